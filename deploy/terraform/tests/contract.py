"""Contract test of the Terraform under deploy/terraform, read with python-hcl2.

For every module and stack (each directory with .tf files under modules/
and stacks/):

- every variable has a type and a description, every output a description;
- every module call has a local source that exists, passes only inputs the
  called module declares and every input it requires (a variable without a
  default), and every `module.NAME.OUTPUT` reference names a module call of
  the same directory and an output the called module declares;
- the pure modules (the ones with `terraform test` files) use no provider
  and no resource but terraform_data, so they keep running offline.

Usage: contract.py [ROOT] (default: the directory above this file).
Exits 1 and lists every violation when one is found.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field

import hcl2

META_ARGUMENTS = {"source", "version", "count", "for_each", "providers", "depends_on"}
MODULE_REF = re.compile(r"\bmodule\.([A-Za-z_][\w-]*)((?:\[[^\]]*\])*)\.([A-Za-z_][\w-]*)")


def unquote(value):
    """python-hcl2 8 keeps the quotes of strings and labels; its fork does not."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def scalar(value):
    """The fork wraps every attribute value in a one-item list."""
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], dict):
        value = value[0]
    return unquote(value)


def blocks(tree: dict, kind: str):
    """(label, body) of every `kind "label" { ... }` block."""
    for item in tree.get(kind, []):
        for label, body in item.items():
            if str(label).startswith("__"):
                continue
            yield unquote(label), body


def attributes(body: dict) -> set[str]:
    return {k for k in body if not k.startswith("__")}


@dataclass
class Module:
    path: str
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    calls: dict[str, dict] = field(default_factory=dict)
    resources: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    text: str = ""  # every expression of the module, as parsed, for references


def load(path: str) -> Module:
    module = Module(path)
    trees = []
    for name in sorted(os.listdir(path)):
        if not name.endswith(".tf"):
            continue
        with open(os.path.join(path, name), encoding="utf-8") as f:
            try:
                tree = hcl2.load(f)
            except Exception as e:  # a parse error is a failure of its own
                raise SystemExit(f"{os.path.join(path, name)}: cannot parse: {e}")
        trees.append(tree)
        for label, body in blocks(tree, "variable"):
            module.variables[label] = body
        for label, body in blocks(tree, "output"):
            module.outputs[label] = body
        for label, body in blocks(tree, "module"):
            module.calls[label] = body
        for kind, _ in blocks(tree, "resource"):
            module.resources.append(kind)
        for kind, _ in blocks(tree, "provider"):
            module.providers.append(kind)
        for body in tree.get("terraform", []):
            if body.get("required_providers"):
                module.providers.append("required_providers")
    module.text = json.dumps(trees)
    return module


def module_dirs(root: str) -> list[str]:
    found = []
    for top in ("modules", "stacks"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "tests"]
            if any(f.endswith(".tf") for f in filenames):
                found.append(os.path.normpath(dirpath))
    return sorted(found)


def check(root: str) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []
    modules = {d: load(d) for d in module_dirs(root)}
    counts = {"modules": len(modules), "variables": 0, "outputs": 0, "calls": 0, "references": 0}
    rel = lambda p: os.path.relpath(p, root)

    for d, m in modules.items():
        for name, body in m.variables.items():
            counts["variables"] += 1
            if "type" not in body:
                problems.append(f"{rel(d)}: variable {name} has no type")
            if not str(scalar(body.get("description", "")) or "").strip():
                problems.append(f"{rel(d)}: variable {name} has no description")
        for name, body in m.outputs.items():
            counts["outputs"] += 1
            if not str(scalar(body.get("description", "")) or "").strip():
                problems.append(f"{rel(d)}: output {name} has no description")

        if os.path.isdir(os.path.join(d, "tests")):
            impure = [r for r in m.resources if r != "terraform_data"]
            if impure or m.providers:
                problems.append(f"{rel(d)}: a pure module uses providers or resources: {sorted(set(impure + m.providers))}")

        targets: dict[str, Module] = {}
        for call, body in m.calls.items():
            counts["calls"] += 1
            source = scalar(body.get("source", ""))
            if not isinstance(source, str) or not source.startswith(("./", "../")):
                problems.append(f"{rel(d)}: module {call} has no local source ({source!r})")
                continue
            target = modules.get(os.path.normpath(os.path.join(d, source)))
            if target is None:
                problems.append(f"{rel(d)}: module {call}: no module at {source}")
                continue
            targets[call] = target
            inputs = attributes(body) - META_ARGUMENTS
            for name in sorted(inputs - set(target.variables)):
                problems.append(f"{rel(d)}: module {call} passes {name}, which {rel(target.path)} does not declare")
            required = {v for v, b in target.variables.items() if "default" not in b}
            for name in sorted(required - inputs):
                problems.append(f"{rel(d)}: module {call} does not pass {name}, which {rel(target.path)} requires")

        for call, _, output in MODULE_REF.findall(m.text):
            counts["references"] += 1
            if call not in m.calls:
                problems.append(f"{rel(d)}: module.{call} is referenced but not called here")
            elif call in targets and output not in targets[call].outputs:
                problems.append(f"{rel(d)}: module.{call}.{output}: {rel(targets[call].path)} has no output {output}")

    return sorted(set(problems)), counts


def main() -> int:
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    problems, counts = check(root)
    for p in problems:
        print(f"contract: {p}")
    print(
        "contract: {modules} modules, {variables} variables, {outputs} outputs, "
        "{calls} module calls, {references} output references: ".format(**counts)
        + (f"{len(problems)} problems" if problems else "ok")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
