#!/usr/bin/env python3
"""Checks Warren's layering from the `use` lines and paths in src/.

1. No module imports a layer above its own: amqp (its own crate) -> store -> broker ->
   connection and http -> server -> main (lib.rs, config, error and tls are shared by all).
2. No circle of imports among the modules of one parent (broker's children, connection's
   children, store's children...). A child using its parent, and a parent using its children,
   is how a module is split into files, and is not counted.

Prints every violation and exits 1 if there is one; prints the module graph's size otherwise.
Run from anywhere: python3 .ci/layers.py
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
# Lower number = lower layer. A module may use its own layer and those below it.
LAYERS = {"store": 1, "broker": 2, "connection": 3, "http": 3, "server": 4, "main": 5}
SHARED = {"lib", "config", "error", "tls"}

def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return rel

def strip_tests(text):
    # Unit tests may reach anywhere; only the code itself is layered.
    cut = re.search(r"^#\[cfg\(test\)\]\s*\n\s*(pub(\(crate\))? )?mod tests", text, re.M)
    return text[: cut.start()] if cut else text

def paths_used(text):
    """Every crate::/super:: path in the code (use lines and qualified paths)."""
    found = []
    for m in re.finditer(r"\buse\s+([^;]+);", text, re.S):
        found.extend(expand(m.group(1).replace("\n", " ").replace(" ", "")))
    for m in re.finditer(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
        found.append(m.group(1))
    return found

def expand(tree):
    """crate::a::{b, c::{d}} -> crate::a::b, crate::a::c::d"""
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p:
            out.extend(expand(head + p))
    return out

def resolve(module, path):
    """The module path (list) a crate::/super:: path points into."""
    segs = path.split("::")
    if segs[0] == "crate":
        target = segs[1:]
    else:
        base = list(module)
        while segs and segs[0] == "super":
            base = base[:-1]
            segs = segs[1:]
        target = base + segs
    return [s for s in target if s != "self"]

def main():
    files = []
    for d, _, names in os.walk(ROOT):
        files += [os.path.join(d, n) for n in names if n.endswith(".rs")]
    known = {tuple(module_of(f)) for f in files}
    problems = []
    edges = {}
    for f in sorted(files):
        module = module_of(f)
        text = strip_tests(open(f, encoding="utf-8").read())
        for path in paths_used(text):
            target = resolve(module, path)
            # The longest known module the path names.
            while target and tuple(target) not in known:
                target = target[:-1]
            if not target or target == module:
                continue
            top, ttop = module[0], target[0]
            if top in LAYERS and ttop in LAYERS and LAYERS[ttop] > LAYERS[top]:
                problems.append(f"{'::'.join(module)} uses {path} (layer {ttop} is above {top})")
            # Sibling edges: the first point where the two paths part, if both go deeper.
            i = 0
            while i < min(len(module), len(target)) and module[i] == target[i]:
                i += 1
            if i < len(module) and i < len(target):
                a, b = tuple(module[: i + 1]), tuple(target[: i + 1])
                edges.setdefault(a, {}).setdefault(b, set()).add(
                    f"{'::'.join(module)} uses {path}")
    # Circles among siblings.
    seen_cycles = set()
    def visit(node, stack, on_stack):
        for nxt in edges.get(node, {}):
            if nxt in on_stack:
                cycle = stack[stack.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    steps = []
                    for x, y in zip(cycle, cycle[1:]):
                        steps.append(sorted(edges[x][y])[0])
                    problems.append("import circle: " + " -> ".join("::".join(c) for c in cycle)
                                    + "\n    " + "\n    ".join(steps))
            elif nxt not in done:
                stack.append(nxt)
                on_stack.add(nxt)
                visit(nxt, stack, on_stack)
                on_stack.discard(nxt)
                stack.pop()
        done.add(node)
    done = set()
    for node in sorted(edges):
        if node not in done:
            visit(node, [node], {node})
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering problem(s)")
        return 1
    print(f"layers ok: {len(known)} modules, {sum(len(v) for v in edges.values())} sibling edges, no circles")
    return 0

if __name__ == "__main__":
    sys.exit(main())
