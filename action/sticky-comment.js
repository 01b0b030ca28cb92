// Create or update one pull-request comment per llmeval suite (the "sticky" comment).
// The comment is found by the hidden marker `<!-- llmeval:SUITE -->` that summary.md starts with.
// Used by action.yml through actions/github-script: require(this file)({github, context, core}, runDirs).
'use strict';
const fs = require('fs');
const path = require('path');

const LIMIT = 65000; // GitHub rejects comment bodies over 65,536 characters
const MARKER = /<!-- llmeval:(?!report-url -->)(.+?) -->/; // the suite's marker, not the link placeholder
const REPORT_URL = '<!-- llmeval:report-url -->';

// The comment for one run directory: its summary.md (marker ensured, report link filled in,
// cut to fit), or null when the run wrote no summary.md.
function commentBody(runDir, reportUrl) {
  const mdPath = path.join(runDir, 'summary.md');
  if (!fs.existsSync(mdPath)) return null;
  let text = fs.readFileSync(mdPath, 'utf8').replace(/\s+$/, '');
  let found = text.match(MARKER);
  if (!found) {
    const manifest = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8'));
    text = `<!-- llmeval:${String(manifest.suite.name).replace(/[^A-Za-z0-9_.-]/g, '-')} -->\n${text}`;
    found = text.match(MARKER);
  }
  let footer = '';
  if (reportUrl) {
    const lines = text.split('\n');
    const at = lines.findIndex((line) => line.includes(REPORT_URL));
    if (at >= 0) lines[at] = `📄 [Full report](${reportUrl}) (report.html in the run's artifact)`;
    else footer = `\n\n📄 [Full report](${reportUrl}) (report.html in the run's artifact)`;
    text = lines.join('\n');
  }
  const cutNote = "\n\n> _Cut to fit GitHub's comment size limit; the full summary is summary.md in the artifact._";
  if (text.length + footer.length > LIMIT) {
    const room = LIMIT - footer.length - cutNote.length;
    const at = text.lastIndexOf('\n', room);
    text = text.slice(0, at > 0 ? at : room) + cutNote;
  }
  return { marker: found[0], suite: found[1], body: text + footer };
}

// reportUrl: where the uploaded artifact is (upload-artifact's artifact-url), else the workflow run.
async function stickyComments({ github, context, core }, runDirs, reportUrl) {
  const dirs = String(runDirs || '').split('\n').map((s) => s.trim()).filter(Boolean);
  const pr = context.payload && context.payload.pull_request;
  const issueNumber = pr ? pr.number : undefined;
  if (!issueNumber) {
    core.info('llmeval: not a pull request, no comment');
    return [];
  }
  const { owner, repo } = context.repo;
  const runUrl = context.runId ? `${context.serverUrl}/${owner}/${repo}/actions/runs/${context.runId}` : '';
  const link = reportUrl || runUrl;
  const existing = await github.paginate(github.rest.issues.listComments,
    { owner, repo, issue_number: issueNumber, per_page: 100 });
  const done = [];
  for (const dir of dirs) {
    const c = commentBody(dir, link);
    if (!c) {
      core.warning(`llmeval: no summary.md in ${dir}; no comment for it (run with --format md)`);
      continue;
    }
    const old = existing.find((x) => typeof x.body === 'string' && x.body.includes(c.marker));
    if (old) {
      await github.rest.issues.updateComment({ owner, repo, comment_id: old.id, body: c.body });
      old.body = c.body;
      done.push({ suite: c.suite, action: 'updated', id: old.id });
    } else {
      const { data } = await github.rest.issues.createComment({ owner, repo, issue_number: issueNumber, body: c.body });
      existing.push(data);
      done.push({ suite: c.suite, action: 'created', id: data.id });
    }
    core.info(`llmeval: ${done[done.length - 1].action} the comment for ${c.suite}`);
  }
  return done;
}

module.exports = stickyComments;
module.exports.commentBody = commentBody;
