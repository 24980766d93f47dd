#!/usr/bin/env python3
"""Finds import circles between the modules of each crate under services/ and shared/.

A module's files may use their parent and their own children freely (Rust's `mod.rs` declares and
re-exports its children). What makes a house hard to read is two sibling rooms that need each
other: A uses B and B uses A (or a longer ring), where A and B are modules or folders side by
side. This reads every `crate::`, `super::` and `self::` path in every file, resolves it to the
deepest module it names, and for each pair of sibling rooms records "A uses B"; then it prints the
folders and each folder's rooms, and exits 1 on any circle.

    scripts/module_cycles.py            # all crates
    scripts/module_cycles.py --graph    # also print every sibling edge
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def modules_of(src: Path) -> dict[tuple[str, ...], Path]:
    """Every module path of a crate (lib.rs / main.rs at the root) and its file."""
    found = {}
    for file in src.rglob("*.rs"):
        if file == src / "main.rs" and (src / "lib.rs").exists():
            continue  # the binary: a crate of its own that uses the library by name
        parts = list(file.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        found[tuple(parts)] = file
    return found


def expand_use(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return [path for part in parts if part for path in expand_use(prefix + part)]


def paths_in(text: str) -> list[str]:
    text = re.sub(r"//[^\n]*", "", text)
    paths = []
    for use in re.findall(r"\buse\s+([^;]+);", text):
        paths += expand_use(use)
    paths += re.findall(r"\b(?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+", text)
    return paths


def resolve(path: str, here: tuple[str, ...], known) -> tuple[str, ...] | None:
    segments = [s for s in path.split("::") if s]
    if not segments:
        return None
    # `here` is the file's module (a mod.rs stands for its folder), so `super` is one level up.
    if segments[0] == "crate":
        base, segments = (), segments[1:]
    elif segments[0] in ("super", "self"):
        base = here
        while segments and segments[0] in ("super", "self"):
            if segments.pop(0) == "super":
                base = base[:-1]
    else:
        return None  # another crate, or a name in scope
    target = base
    for segment in segments:
        if target + (segment,) in known:
            target = target + (segment,)
        else:
            break
    return target


def crate_report(src: Path, show_graph: bool) -> int:
    known = modules_of(src)
    edges: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for module, file in known.items():
        for path in paths_in(file.read_text()):
            target = resolve(path, module, known)
            if target is None:
                continue
            common = 0
            while common < min(len(module), len(target)) and module[common] == target[common]:
                common += 1
            if common in (len(module), len(target)):
                continue  # one is inside the other
            edges.setdefault(module[:common], set()).add((module[common], target[common]))
    circles = 0
    crate = src.parent.relative_to(ROOT)
    depth = max(len(m) for m in known)
    folders = sorted({m[:-1] for m in known if m})
    print(f"{crate}: {len(known)} modules, {len(folders)} folders, {depth} deep")
    for folder in folders:
        rooms = sorted({m[len(folder)] for m in known if len(m) > len(folder) and m[: len(folder)] == folder})
        print(f"  {'/'.join(folder) or '(root)'}: {', '.join(rooms)}")
        graph = {}
        for a, b in edges.get(folder, ()):
            graph.setdefault(a, set()).add(b)
        if show_graph:
            for a in sorted(graph):
                print(f"      {a} -> {', '.join(sorted(graph[a]))}")
        for cycle in find_cycles(graph):
            circles += 1
            print(f"  CIRCLE in {'/'.join(folder) or 'the crate root'}: {' -> '.join(cycle + [cycle[0]])}")
    return circles


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One representative ring per strongly connected component of more than one room."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    show_graph = "--graph" in sys.argv
    crates = sorted(ROOT.glob("services/*/src")) + [ROOT / "shared" / "src"]
    circles = sum(crate_report(src, show_graph) for src in crates)
    if circles:
        print(f"module_cycles: {circles} import circle(s) between sibling modules")
        return 1
    print("module_cycles: no import circle between sibling modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
