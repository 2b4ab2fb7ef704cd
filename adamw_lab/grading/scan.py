"""Static check of an answer: does the function use what the question asks the student to write?

The code of the graded cells is NFKC-normalised (as Python does with
identifiers, so ``ｒｅｆｅｒｅｎｃｅ`` is ``reference``), IPython syntax is
turned into Python, and the module is parsed.  Names are resolved through
imports under any alias, assignments (``R = reference``, ``opt = torch.optim``),
``importlib.import_module("...")``, ``__import__("...")``, ``getattr(x, "...")``
and ``sys.modules["..."]`` with constant strings, and followed into every
function the answer calls by name.  A use of a forbidden module or object
anywhere in that code (defaults and decorators included) is reported.

What it cannot see: names built at run time (``getattr(torch, "op" + "tim")``),
``exec`` of strings, objects reached through ``globals()``.  The sandbox holds
no answer key in any case; this check is about library implementations that
are installed (``torch.optim``, autograd).
"""
from __future__ import annotations

import ast
import unicodedata

# Never in an answer: the answer key (absent from the sandbox anyway).
ANSWER_KEY = ("adamw_lab.reference", "adamw_lab.reference_variants", "adamw_lab.theory", "adamw_lab.grading")
# Ready-made optimizers, where the question is to write the update.
OPTIMIZERS = ("torch.optim", "adamw_lab.optim", "adamw_lab.AdamW", "adamw_lab.AdamL2", "adamw_lab.AdamWProx",
              "adamw_lab.SGDW", "adamw_lab.SGDL2", "adamw_lab.functional", "adamw_lab.kernels",
              "adamw_lab.cpp_kernel", "adamw_lab.triton_kernels", "adamw_lab.variants",
              "torch._foreach_add_", "torch._fused_adamw_", "torch._fused_adam_")
# Automatic differentiation, where the question is to derive the gradient by hand.
AUTOGRAD = ("torch.autograd", "torch.func", "torch.Tensor.backward", "functorch", "jax")
AUTOGRAD_METHODS = ("backward", "requires_grad_")


def to_python(source: str) -> str:
    """Cell source as plain Python: NFKC-normalised, IPython magics and shell escapes translated."""
    source = unicodedata.normalize("NFKC", source)
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # IPython missing or a cell it cannot transform: parse as it is
        return source


def parse_cells(sources: list[str]) -> list[ast.Module]:
    trees = []
    for src in sources:
        try:
            trees.append(ast.parse(to_python(src)))
        except (SyntaxError, ValueError):
            continue  # a cell that does not parse defines nothing the answer can call
    return trees


def _const_str(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Resolver:
    """Dotted names of expressions, through the aliases of one scope (and the module's)."""

    def __init__(self, parent: dict | None = None):
        self.env: dict[str, str] = {}
        self.parent = parent or {}

    def lookup(self, name: str) -> str | None:
        return self.env.get(name, self.parent.get(name))

    def path(self, node) -> str | None:
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            base = self.path(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Subscript) and self.path(node.value) == "sys.modules":
            return _const_str(node.slice)
        if isinstance(node, ast.Call):
            func = self.path(node.func)
            args = node.args
            if func in ("importlib.import_module", "__import__", "builtins.__import__") and args:
                return _const_str(args[0])
            if func in ("getattr", "builtins.getattr") and len(args) >= 2 and _const_str(args[1]):
                base = self.path(args[0])
                return f"{base}.{_const_str(args[1])}" if base else None
        return None

    def bind(self, stmt) -> None:
        """Record the aliases a statement creates."""
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    self.env[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    self.env[top] = top
        elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for alias in stmt.names:
                if alias.name == "*":
                    self.env.setdefault("*", stmt.module)
                    self.env["*" + stmt.module] = stmt.module
                else:
                    self.env[alias.asname or alias.name] = f"{stmt.module}.{alias.name}"
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            value = self.path(stmt.value) if stmt.value is not None else None
            for target in targets:
                if isinstance(target, ast.Name) and value:
                    self.env[target.id] = value


def _builtin_env() -> dict:
    return {name: name for name in ("getattr", "__import__", "importlib", "sys", "builtins")}


def forbidden_uses(sources: list[str], target: str, forbidden: tuple[str, ...],
                   methods: tuple[str, ...] = ()) -> list[str]:
    """The forbidden names (sorted) that the function ``target`` uses, directly or through its callees."""
    trees = parse_cells(sources)
    module = _Resolver(_builtin_env())
    functions: dict[str, list] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.NamedExpr)):
                module.bind(node)   # anywhere: an alias made in a loop or a function still names a module
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                functions.setdefault(stmt.name, []).append(stmt)
            elif isinstance(stmt, ast.Assign):
                for t in stmt.targets:
                    if isinstance(t, ast.Name) and isinstance(stmt.value, (ast.Lambda, ast.Call, ast.Name)):
                        functions.setdefault(t.id, []).append(stmt.value)

    def hit(path: str | None) -> str | None:
        if not path:
            return None
        for name in forbidden:
            if path == name or path.startswith(name + "."):
                return name
        return None

    # `from torch.optim import *` anywhere: any name may come from it, so it counts as a use
    found: set[str] = {hit(m) for k, m in module.env.items() if k.startswith("*") and k != "*" and hit(m)}
    seen: set[str] = set()
    todo = [target]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in functions.get(name, []):
            scope = _Resolver({**module.parent, **module.env})
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.NamedExpr)):
                    scope.bind(sub)
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
                    what = hit(scope.path(sub))
                    if what:
                        found.add(what)
                if isinstance(sub, ast.Attribute) and sub.attr in methods:
                    found.add("." + sub.attr)
                if isinstance(sub, ast.keyword) and sub.arg == "requires_grad" and methods:
                    found.add("requires_grad=")
                if isinstance(sub, ast.Name) and sub.id in functions and not scope.env.get(sub.id):
                    todo.append(sub.id)
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    for alias in sub.names:
                        full = f"{sub.module}.{alias.name}" if isinstance(sub, ast.ImportFrom) and sub.module else alias.name
                        what = hit(full) or hit(getattr(sub, "module", None) or "")
                        if what:
                            found.add(what)
    return sorted(found)
