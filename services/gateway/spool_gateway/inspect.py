"""Static checks of a package's code, read with `ast`: user code is never imported or run.

dtlpy's push-time sanity check, made before anything is stored: the entry file exists and
parses, the class is at its top level, each function is a method of it (or of a base class in
the same file), and each method argument but self, `progress` and `context` is a declared input
or has a default. A method that may live in code we cannot see (an imported base class, an
assignment, a class decorator or metaclass) is accepted unchecked. `async def` is refused.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from spool_common.archive import normalise_path
from spool_common.errors import FieldError, ValidationFailure, raise_if_any
from spool_common.models import (
    DEFAULT_FUNCTION_NAME,
    FunctionIO,
    PackageFunction,
    PackageInputType,
    PackageModule,
    Requirement,
)

FUNCTION_RESERVED = frozenset({"self", "progress", "context"})  # the agent passes these
INIT_RESERVED = frozenset({"self"})
_Method = ast.FunctionDef | ast.AsyncFunctionDef
_Found = _Method | Literal["unchecked"] | None
_Classes = Mapping[str, ast.ClassDef]
_Inputs = Sequence[FunctionIO]
_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def parse_package_json(raw: bytes) -> dict[str, Any]:
    """The object in `package.json`, or ValidationFailure saying where the JSON breaks."""
    try:
        value = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as e:
        reason = f"is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        raise ValidationFailure.of("package.json", reason) from None
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), "a number")
        raise ValidationFailure.of("package.json", f"must be a JSON object, not {kind}")
    return value


# --- modules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """Which method is checked against which declared inputs, and where to report."""

    where: str  # "ServiceRunner.run"
    inputs_field: str  # "modules[0].functions[1].input"
    name_field: str  # "modules[0].functions[1].name"
    reserved: frozenset[str]


@dataclass(frozen=True)
class _Param:
    name: str
    has_default: bool
    positional_only: bool
    annotation: ast.expr | None = None


def inspect_modules(
    modules: Sequence[PackageModule], files: Mapping[str, bytes], *, field: str = "modules"
) -> None:
    """Check every module against the code in `files`; one ValidationFailure lists all faults.
    `field` is where the modules came from (`modules`, or `package.json.modules`)."""
    errors = _duplicates([m.name for m in modules], field, "module")
    for i, module in enumerate(modules):
        errors += _inspect_module(module, files, f"{field}[{i}]")
    raise_if_any(errors)


def _duplicates(names: Sequence[str], at: str, what: str) -> list[FieldError]:
    seen: set[str] = set()
    errors = []
    for j, name in enumerate(names):
        if name in seen:
            errors.append(FieldError(f"{at}[{j}].name", f"{what} name {name!r} is used twice"))
        seen.add(name)
    return errors


def _inspect_module(module: PackageModule, files: Mapping[str, bytes], at: str) -> list[FieldError]:
    errors = _duplicates([f.name for f in module.functions], f"{at}.functions", "function")
    errors += _duplicates([io.name for io in module.init_inputs], f"{at}.initInputs", "input")
    tree = _parse_entry_point(module.entry_point, files)
    if isinstance(tree, str):
        return [*errors, FieldError(f"{at}.entryPoint", tree)]
    classes = _classes(tree)
    cls = classes.get(module.class_name)
    if cls is None:
        reason = f"class {module.class_name!r} is not defined at the top level of the entry point"
        return [*errors, FieldError(f"{at}.className", reason)]
    init = _Target(f"{cls.name}.__init__", f"{at}.initInputs", f"{at}.className", INIT_RESERVED)
    errors += _check_method(_find_method(cls, "__init__", classes), module.init_inputs, init)
    for j, function in enumerate(module.functions):
        errors += _inspect_function(function, cls, classes, f"{at}.functions[{j}]")
    return errors


def _inspect_function(
    function: PackageFunction, cls: ast.ClassDef, classes: _Classes, at: str
) -> list[FieldError]:
    errors = _duplicates([io.name for io in function.input], f"{at}.input", "input")
    found = _find_method(cls, function.name, classes)
    if found is None:
        reason = f"class {cls.name} has no method {function.name!r}"
        return [*errors, FieldError(f"{at}.name", reason)]
    target = _Target(f"{cls.name}.{function.name}", f"{at}.input", f"{at}.name", FUNCTION_RESERVED)
    return errors + _check_method(found, function.input, target)


def _parse_entry_point(entry_point: str, files: Mapping[str, bytes]) -> ast.Module | str:
    """The parsed entry file, or the reason it cannot be had."""
    try:
        path = normalise_path(entry_point)
    except ValueError as e:
        return f"{entry_point!r} {e}"
    if not path.endswith(".py"):
        return f"{entry_point!r} is not a Python file (.py)"
    source = files.get(path)
    if source is None:
        return f"{path} is not in the codebase"
    try:
        return ast.parse(source, filename=path)
    except SyntaxError as e:
        line = f" (line {e.lineno})" if e.lineno else ""
        return f"{path} does not parse as Python: {e.msg}{line}"
    except (ValueError, RecursionError):
        return f"{path} does not parse as Python: it is nested too deeply"


def _find_method(cls: ast.ClassDef, name: str, classes: _Classes) -> _Found:
    """The method as Python would find it, "unchecked" if it may live in unseen code."""
    for stmt in reversed(cls.body):
        if isinstance(stmt, _Method) and stmt.name == name:
            return stmt
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return "unchecked"
    rest = {k: v for k, v in classes.items() if k != cls.name}  # no cycles
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id == "object":
            continue
        if not isinstance(base, ast.Name) or base.id not in rest:
            return "unchecked"
        found = _find_method(rest[base.id], name, rest)
        if found is not None:
            return found
    # A class decorator (@dataclass) or a metaclass may add the method.
    return "unchecked" if cls.decorator_list or cls.keywords else None


def _check_method(found: _Found, declared: _Inputs, target: _Target) -> list[FieldError]:
    """Arguments against declared inputs. `None` is object's: it takes no arguments."""
    if found == "unchecked":
        return []
    if isinstance(found, ast.AsyncFunctionDef):
        reason = f"{target.where} is an async function; async functions are not supported yet"
        return [FieldError(target.name_field, reason)]
    params = [] if found is None else _parameters(found)
    accepts_any = found is not None and found.args.kwarg is not None
    errors = _argument_errors(params, declared, target)
    return errors + _input_errors(declared, params, accepts_any, target)


def _parameters(method: ast.FunctionDef) -> list[_Param]:
    """Parameters a caller passes, without the bound first one (self or cls)."""
    args = method.args
    positional = [*args.posonlyargs, *args.args]
    first_default = len(positional) - len(args.defaults)
    params = [
        _Param(arg.arg, i >= first_default, i < len(args.posonlyargs), arg.annotation)
        for i, arg in enumerate(positional)
    ]
    params += [
        _Param(arg.arg, default is not None, False, arg.annotation)
        for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in method.decorator_list)
    return params[1:] if positional and not static else params


def _argument_errors(
    params: Sequence[_Param], declared: _Inputs, target: _Target
) -> list[FieldError]:
    names = {io.name for io in declared}
    return [
        FieldError(target.inputs_field, f"argument {p.name!r} of {target.where} {problem}")
        for p in params
        if p.name not in target.reserved and (problem := _argument_problem(p, names))
    ]


def _argument_problem(p: _Param, names: set[str]) -> str | None:
    if p.name in names:
        return "is positional-only, but inputs are passed by name" if p.positional_only else None
    return None if p.has_default else "is neither a declared input nor has a default"


def _input_errors(
    declared: _Inputs, params: Sequence[_Param], accepts_any: bool, target: _Target
) -> list[FieldError]:
    names = {p.name for p in params}
    errors = []
    for k, io in enumerate(declared):
        at = f"{target.inputs_field}[{k}].name"
        if io.name in target.reserved:
            errors.append(FieldError(at, f"input name {io.name!r} is reserved for the agent"))
        elif io.name not in names and not accepts_any:
            errors.append(FieldError(at, f"input {io.name!r} is not an argument of {target.where}"))
    return errors


def modules_from_sources(files: Mapping[str, bytes]) -> list[PackageModule]:
    """The modules of a package whose request and package.json name none.

    One module, `default_module`: `main.py`, class `ServiceRunner`. Its functions are the
    methods decorated with `@spool.function` (each argument but self, `progress` and
    `context` an input, typed from its annotation: `str` String, `int` Integer, `float`
    Float, `bool` Boolean, `spool.Item` Item, `list[spool.Item]` Item[]..., anything else
    Json); without any, one function `run` whose inputs are its arguments without a default,
    typed `Json`. `initInputs` from `__init__`'s arguments without a default. Nothing is
    refused here: when main.py, the class or `run` is missing or broken, the module has no
    inputs and `inspect_modules` then says what is wrong.
    """
    default = PackageModule()  # main.py, ServiceRunner
    tree = _parse_entry_point(default.entry_point, files)
    classes = {} if isinstance(tree, str) else _classes(tree)
    cls = classes.get(default.class_name)
    init = _required_inputs(cls, "__init__", classes, INIT_RESERVED)
    functions = _decorated_functions(cls) if cls is not None else []
    if not functions:
        run = _required_inputs(cls, DEFAULT_FUNCTION_NAME, classes, FUNCTION_RESERVED)
        functions = [PackageFunction(input=run)]
    return [PackageModule(init_inputs=init, functions=functions)]


_PYTHON_TYPES = {
    "str": PackageInputType.STRING,
    "int": PackageInputType.INTEGER,
    "float": PackageInputType.FLOAT,
    "bool": PackageInputType.BOOLEAN,
}
_LISTS = {t.value for t in PackageInputType if t.value.endswith("[]")}
_NAMED = {t.value: t for t in PackageInputType if f"{t.value}[]" in _LISTS}  # Item, String...


def _decorated_functions(cls: ast.ClassDef) -> list[PackageFunction]:
    """The class's own methods marked `@spool.function(...)`, in the order written."""
    functions = []
    for node in cls.body:
        marker = next((d for d in getattr(node, "decorator_list", ()) if _is_marker(d)), None)
        if not isinstance(node, ast.FunctionDef) or marker is None:
            continue
        inputs = [
            FunctionIO(type=_input_type(p.annotation), name=p.name)
            for p in _parameters(node)
            if p.name not in FUNCTION_RESERVED and p.name.isascii()
        ]
        labels = _keywords(marker)
        functions.append(
            PackageFunction(
                name=node.name,
                input=inputs,
                display_name=labels.get("display_name"),
                description=labels.get("description") or ast.get_docstring(node),
            )
        )
    return functions


def _is_marker(decorator: ast.expr) -> bool:
    """`@function`, `@spool.function`, and either called with arguments."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Name) and target.id == "function") or (
        isinstance(target, ast.Attribute) and target.attr == "function"
    )


def _keywords(decorator: ast.expr) -> dict[str, str]:
    """The decorator's string keyword arguments (display_name=..., description=...)."""
    if not isinstance(decorator, ast.Call):
        return {}
    return {
        k.arg: k.value.value
        for k in decorator.keywords
        if k.arg and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
    }


def _input_type(annotation: ast.expr | None) -> PackageInputType:
    """The input type an argument's annotation declares; Json when it declares none we know."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:  # a string annotation: "spool.Item"
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return PackageInputType.JSON
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        sides = [annotation.left, annotation.right]  # X | None
        known = [s for s in sides if not (isinstance(s, ast.Constant) and s.value is None)]
        return _input_type(known[0]) if len(known) == 1 else PackageInputType.JSON
    if isinstance(annotation, ast.Subscript):
        outer = _last_name(annotation.value)
        inner = _input_type(annotation.slice)
        if outer in ("list", "List", "Sequence") and inner.value in _NAMED:
            return PackageInputType(f"{inner.value}[]")
        return inner if outer == "Optional" else PackageInputType.JSON
    name = _last_name(annotation)
    return _PYTHON_TYPES.get(name) or _NAMED.get(name) or PackageInputType.JSON


def _last_name(node: ast.expr | None) -> str:
    """`Item` of `Item` and `spool.Item`; "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else ""


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _required_inputs(
    cls: ast.ClassDef | None, name: str, classes: _Classes, reserved: frozenset[str]
) -> list[FunctionIO]:
    found = None if cls is None else _find_method(cls, name, classes)
    if not isinstance(found, ast.FunctionDef):
        return []
    return [
        FunctionIO(type=PackageInputType.JSON, name=p.name)
        for p in _parameters(found)
        if not p.has_default and p.name not in reserved and p.name.isascii()
    ]


# --- requirements.txt --------------------------------------------------------------------

_REQUIREMENT = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9._,\s-]*\])?)"
    r"\s*(?:(?P<operator>==|>=|<=|>|<)\s*(?P<version>[A-Za-z0-9][A-Za-z0-9.*+!_-]*))?"
)
_UNSUPPORTED = re.compile(r"===|~=|!=|;|@|://|,")  # markers, URLs, several constraints
_EXPECTED = "expected a name, then optionally ==, >, <, <= or >= and one version"


def parse_requirements(text: str) -> list[Requirement]:
    """`requirements.txt` as `[{name, operator?, version?}]`.

    Blank lines, comments and option lines (`-r`, `-e`, `--index-url` ...) are skipped, as
    are per-line options such as `--hash`. Extras stay in the name (`uvicorn[standard]`).
    A line Spool cannot express is refused with its number, as is a package listed twice.
    """
    requirements: list[Requirement] = []
    errors: list[FieldError] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _requirement_text(raw)
        if not line:
            continue
        parsed = _parse_requirement(line)
        if isinstance(parsed, str):
            errors.append(FieldError("requirements.txt", f"line {number}: {line!r} {parsed}"))
            continue
        key = re.sub(r"[-_.]+", "-", parsed.name.split("[")[0]).lower()
        if key in first_line:
            reason = f"line {number}: {parsed.name!r} is already listed on line {first_line[key]}"
            errors.append(FieldError("requirements.txt", reason))
        first_line.setdefault(key, number)
        requirements.append(parsed)
    raise_if_any(errors)
    return requirements


def _requirement_text(line: str) -> str:
    """The line without its comment, options (`-r`, `--hash` ...) or continuation backslash."""
    return re.split(r"(?:^|\s)[#-]", line, maxsplit=1)[0].strip().removesuffix("\\").strip()


def _parse_requirement(line: str) -> Requirement | str:
    unsupported = _UNSUPPORTED.search(line)
    if unsupported is not None:
        return f"uses {unsupported.group()!r}, which Spool cannot express yet: {_EXPECTED}"
    match = _REQUIREMENT.fullmatch(line)
    if match is None:
        return f"is not a requirement: {_EXPECTED}"
    return Requirement.model_validate(match.groupdict())


def mark_required(
    modules: Sequence[PackageModule], files: Mapping[str, bytes]
) -> list[PackageModule]:
    """The modules with `mandatory: true` on every declared input whose argument has no
    default (unless the package said otherwise), so a call or a service that leaves one out
    is refused by the gateway instead of failing inside the user's code. Run after
    `inspect_modules`: methods that cannot be read statically are left as they are."""
    marked = []
    for module in modules:
        tree = _parse_entry_point(module.entry_point, files)
        classes = {} if isinstance(tree, str) else _classes(tree)
        cls = classes.get(module.class_name)
        functions = [
            f.model_copy(update={"input": _marked(cls, f.name, f.input, classes)})
            for f in module.functions
        ]
        init = _marked(cls, "__init__", module.init_inputs, classes)
        marked.append(module.model_copy(update={"functions": functions, "init_inputs": init}))
    return marked


def _marked(
    cls: ast.ClassDef | None, name: str, declared: Sequence[FunctionIO], classes: _Classes
) -> list[FunctionIO]:
    found = None if cls is None else _find_method(cls, name, classes)
    if not isinstance(found, ast.FunctionDef):
        return list(declared)
    required = {p.name for p in _parameters(found) if not p.has_default}
    return [
        io.model_copy(update={"mandatory": True})
        if io.mandatory is None and io.name in required and io.value is None
        else io
        for io in declared
    ]
