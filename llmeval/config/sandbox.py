"""The Jinja sandbox prompts and request bodies render in: Jinja's ImmutableSandboxedEnvironment
(no attribute escapes, no mutation) plus a bound on what one render may cost, so that a suite
from a pull request cannot hang `validate` or exhaust memory (`{{ "a" * 10**9 }}`,
`center(10**9)`, nested `range(100000)` loops, exponential macros).

Every value a template builds (operators, filters, string methods, `~`, output) is checked
before it is allocated where its size can be known, and charged to a budget per render: one value
or output at most MAX_CHARS characters, all of them together at most BUDGET_CHARS, at most
MAX_STEPS loop iterations, calls and outputs, MAX_SECONDS of time. Past a bound the render stops
with TemplateLimitError, which the caller reports at the template's position."""

from __future__ import annotations

import math
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_CHARS = 2_000_000
"""The longest string (or list) one template value or the rendered text may be."""
BUDGET_CHARS = 20_000_000
"""Characters (and list items) a render may build in all."""
MAX_STEPS = 200_000
"""Loop iterations, calls and outputs in one render."""
MAX_SECONDS = 1.0
"""Wall time of one render."""
MAX_WIDTH = 100_000
"""The widest padding or field a format, `center`, `indent` or `ljust` may ask for."""
MAX_INT_BITS = 16_384
"""The largest integer arithmetic may build (Python prints at most 4,300 digits anyway)."""


class TemplateLimitError(SecurityError):
    """A render went past one of the bounds above."""


class _Budget:
    def __init__(self) -> None:
        self.chars = 0
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimitError(f"the template does more than {MAX_STEPS:,} loop iterations, calls and outputs")
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"rendering took more than {MAX_SECONDS:g} s")

    def charge(self, size: int) -> None:
        self.chars += size
        if self.chars > BUDGET_CHARS:
            raise TemplateLimitError(f"the template builds more than {BUDGET_CHARS:,} characters in all")


_budget: ContextVar[_Budget | None] = ContextVar("llmeval_template_budget", default=None)


def render_bounded(template: Any, variables: dict[str, Any]) -> str:
    """`template.render(variables)` within the bounds (a fresh budget per render)."""
    token = _budget.set(_Budget())
    try:
        text = str(template.render(variables))
    finally:
        _budget.reset(token)
    if len(text) > MAX_CHARS:
        raise TemplateLimitError(f"the rendered text is {len(text):,} characters long (at most {MAX_CHARS:,})")
    return text


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


def _allow(size: int, what: str) -> None:
    """Refuse a value of `size` before it is built, and charge it to the render's budget."""
    if size > MAX_CHARS:
        raise TemplateLimitError(f"{what} would be {size:,} long (at most {MAX_CHARS:,})")
    budget = _budget.get()
    if budget is not None:
        budget.charge(size)


def _width(n: Any, what: str) -> None:
    if isinstance(n, int) and n > MAX_WIDTH:
        raise TemplateLimitError(f"{what} {n:,} is wider than {MAX_WIDTH:,}")


_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str) -> None:
    for m in _PRINTF.finditer(fmt):
        for part in m.groups():
            if part == "*":
                raise TemplateLimitError("a '*' width in a format is not allowed in templates")
            if part is not None:
                _width(int(part), "a format width of")


def _check_format_spec(fmt: str) -> None:
    for _, _, spec, _ in string.Formatter().parse(fmt):
        if spec and "{" in spec:
            raise TemplateLimitError("a nested {} width in a format is not allowed in templates")
        for digits in re.findall(r"\d+", spec or ""):
            _width(int(digits), "a format width of")


def _estimate_replace(s: str, old: Any, new: Any, count: Any = -1) -> int:
    old, new = str(old), str(new)
    hits = len(s) + 1 if not old else s.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * max(0, len(new) - len(old))


def _joined_size(items: list[Any], sep: Any) -> int:
    return sum(len(str(x)) for x in items) + len(str(sep)) * max(0, len(items) - 1)


def _str_method_size(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The size of what a str method would return, for those that can grow: None when it cannot."""
    s, name = obj.__self__, obj.__name__
    first = args[0] if args else None
    if name in ("ljust", "rjust", "center", "zfill"):
        _width(first, f"{name}() to")
        return max(len(s), first) if isinstance(first, int) else None
    if name == "expandtabs":
        tab = first if first is not None else kwargs.get("tabsize", 8)
        _width(tab, "expandtabs() to")
        return len(s) * max(1, tab if isinstance(tab, int) else 8)
    if name == "replace" and len(args) >= 2:
        return _estimate_replace(s, *args[:3])
    if name == "translate" and isinstance(first, dict):
        longest = max((len(v) for v in first.values() if isinstance(v, str)), default=1)
        return len(s) * max(1, longest)
    return None


def _checked_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters with a size check before the ones that grow text, and every result charged."""

    def pre_center(value: Any, width: Any = 80, *a: Any, **k: Any) -> None:
        _width(width, "center() to")

    def pre_indent(value: Any, width: Any = 4, *a: Any, **k: Any) -> None:
        lines = str(value).count("\n") + 1
        _width(width, "indent() by")
        _allow(len(str(value)) + lines * (width if isinstance(width, int) else len(str(width))), "indent()")

    def pre_wordwrap(value: Any, width: Any = 79, break_long: Any = True, wrapstring: Any = None, *a: Any,
                     **k: Any) -> None:
        wrap = k.get("wrapstring", wrapstring)
        pieces = len(str(value)) // max(1, width if isinstance(width, int) else 1) + 1
        _allow(len(str(value)) + pieces * len(str(wrap if wrap is not None else "\n")), "wordwrap()")

    def pre_replace(value: Any, old: Any = "", new: Any = "", count: Any = None, *a: Any, **k: Any) -> None:
        _allow(_estimate_replace(str(value), old, new, -1 if count is None else count), "replace()")

    def pre_format(value: Any, *a: Any, **k: Any) -> None:
        _check_printf(str(value))

    def pre_batch(value: Any, linecount: Any = 1, *a: Any, **k: Any) -> None:
        _width(linecount, "batch() of")

    def pre_slice(value: Any, slices: Any = 1, *a: Any, **k: Any) -> None:
        _width(slices, "slice() into")

    pre: dict[str, Callable[..., None]] = {
        "center": pre_center, "indent": pre_indent, "wordwrap": pre_wordwrap, "replace": pre_replace,
        "format": pre_format, "batch": pre_batch, "slice": pre_slice,
    }
    out = {}
    for name, f in filters.items():
        out[name] = _checked(f, name, pre.get(name))
    out["join"] = _checked(_join_filter(filters["join"]), "join", None)
    return out


def _checked(f: Callable[..., Any], name: str, pre: Callable[..., None] | None) -> Callable[..., Any]:
    passes = getattr(f, "jinja_pass_arg", None)

    @wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        value_args = args[1:] if passes is not None else args
        if pre is not None and value_args:
            pre(*value_args, **kwargs)
        result = f(*args, **kwargs)
        _allow(_size(result), f"the result of {name}")
        return result

    return run


def _join_filter(join: Callable[..., Any]) -> Callable[..., Any]:
    """`join` that counts its items before building the string (a generator of big items could
    otherwise fill memory before the result is checked)."""

    @wraps(join)
    def run(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> Any:
        items: list[Any] = []
        total = 0
        for item in value:
            items.append(item)
            total += len(str(item)) + len(d)
            if total > MAX_CHARS:
                _allow(total, "join()")
        return join(eval_ctx, items, d, attribute)

    return run


class _Hooks(NodeTransformer):
    """Route loops, outputs and `~` through the environment's checks (EnvironmentAttribute names
    cannot be shadowed by a template's own variables or macros)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 (Jinja's visitor naming)
        node = self.generic_visit(node)
        node.iter = _hook("llmeval_iter", node.iter)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:  # noqa: N802
        node = self.generic_visit(node)
        node.nodes = [_hook("llmeval_out", n) for n in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        node = self.generic_visit(node)
        return nodes.Call(nodes.EnvironmentAttribute("llmeval_concat"), list(node.nodes), [], None, None,
                          lineno=node.lineno)


def _hook(name: str, node: nodes.Expr) -> nodes.Expr:
    return nodes.Call(nodes.EnvironmentAttribute(name), [node], [], None, None, lineno=node.lineno)


def _step() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.step()


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with the bounds of this module."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.globals.pop("lipsum", None)  # lipsum(10**9) writes a billion paragraphs
        self.filters.update(_checked_filters(dict(self.filters)))

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Hooks().visit(super()._parse(source, name, filename))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int):
                    _allow(len(seq) * max(n, 0), "a repetition")
            if isinstance(left, int) and isinstance(right, int):
                _bits(left.bit_length() + right.bit_length())
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _bits(right * math.log2(abs(left)))
        elif operator == "+" and isinstance(left, (str, bytes, list, tuple)):
            _allow(_size(left) + _size(right), "a concatenation")
        elif operator == "%" and isinstance(left, str):
            _check_printf(left)
        result = super().call_binop(context, operator, left, right)
        if operator == "%" and isinstance(result, str):
            _allow(len(result), "a formatted string")
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _step()
        inner = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by the sandbox
        owner = getattr(inner, "__self__", None)
        if isinstance(owner, str):
            if inner.__name__ in ("format", "format_map"):
                _check_format_spec(owner)
            size = _str_method_size(inner, args, kwargs)
            if size is not None:
                _allow(size, f"str.{inner.__name__}()")
            elif inner.__name__ == "join":
                items = list(args[0]) if args else []
                _allow(_joined_size(items, owner), "str.join()")
                args = (items, *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        _allow(_size(result), "a call's result")
        return result

    def llmeval_iter(self, iterable: Any) -> Iterator[Any]:
        """A loop's iterable, one step per iteration."""
        for item in iterable:
            _step()
            yield item

    def llmeval_out(self, value: Any) -> Any:
        """A piece of output, charged to the budget."""
        _step()
        _allow(len(value) if isinstance(value, str) else len(str(value)), "the output")
        return value

    def llmeval_concat(self, *parts: Any) -> str:
        """`a ~ b`, sized before it is built."""
        texts = [str(p) for p in parts]
        _allow(sum(map(len, texts)), "a ~ concatenation")
        return "".join(texts)


def _bits(bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateLimitError(f"a number of about {int(bits):,} bits is too large (at most {MAX_INT_BITS:,})")
