#!/usr/bin/env python3
"""The module graph of each crate must run one way (docs/ARCHITECTURE.md "Layers").

Reads every `crate::…` and `super::…` path in a crate's sources (test modules and comments
left out) and checks, at every level of the module tree, that sibling modules do not use each
other in a cycle, and that the top-level modules listed in LAYERS use only those listed after
them. Paths are read rather than compiled because a `use` line is the whole of what decides
the graph, and the check must run in a second without a build.

    scripts/check-modules.py             check the workspace's crates
    scripts/check-modules.py --self-test show that a backward import is caught
"""
import os, re, sys, tempfile

# Top-level modules, highest layer first: each may use only the ones after it.
LAYERS = {
    "guest-agent/src": ["vm", "api", "build", "containers", "volumes", "network", "images", "state_root", "mountinfo", "openat2", "errdefs"],
    "host/src": ["commands", "buildctx", "archive", "machine", "cli", "output", "dockercfg", "goerror"],
}
CRATES = ["guest-agent/src", "host/src", "common/src", "vmm/src"]

def strip(src):
    src = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', src, flags=re.S)
    src = re.sub(r'//[^\n]*', '', src)
    src = re.sub(r'"(\\.|[^"\\])*"', '""', src)
    return src
def modpath(root, f):
    rel = os.path.relpath(f, root)[:-3].split(os.sep)
    if rel[-1] in ('mod', 'lib', 'main'): rel = rel[:-1]
    return rel
def is_dir_mod(f): return os.path.basename(f) in ('mod.rs','lib.rs','main.rs')
def expand(s, i):
    # s[i:] starts after 'X::'; returns list of segment lists
    m = re.match(r'\s*\{', s[i:])
    if m:
        j = i + m.end(); depth=1; k=j
        while depth and k < len(s):
            if s[k]=='{': depth+=1
            elif s[k]=='}': depth-=1
            k+=1
        inner = s[j:k-1]; parts=[]; d=0; cur=''
        for c in inner:
            if c=='{': d+=1
            if c=='}': d-=1
            if c==',' and d==0: parts.append(cur); cur=''
            else: cur+=c
        parts.append(cur); out=[]
        for p in parts:
            p=p.strip()
            if not p: continue
            m2 = re.match(r'(\w+)((?:::\w+)*)(::)?', p)
            if not m2: continue
            segs = [m2.group(1)] + [x for x in m2.group(2).split('::') if x]
            if m2.group(3):
                for sub in expand(p, m2.end()): out.append(segs+sub)
            else: out.append(segs)
        return out
    m = re.match(r'(\w+)((?:::\w+)*)(::\{)?', s[i:])
    if not m: return []
    segs=[m.group(1)]+[x for x in m.group(2).split('::') if x]
    if m.group(3):
        return [segs+sub for sub in expand(s, i+m.end()-1)]
    return [segs]
def refs(f, mp, src):
    for m in re.finditer(r'\b(crate::|(?:super::)+)', src):
        tok = m.group(1)
        if tok=='crate::': start=[]; i=m.end()
        else:
            n = tok.count('super')
            # super from a file module: parent of mp
            start = mp[:len(mp)-n]; i=m.end()
        for segs in expand(src, i):
            yield start+segs

def graph(root):
    """{level: {child: {child it uses: [files]}}} for every module level of the crate."""
    files = []
    for d, _, fs in os.walk(root):
        files += [os.path.join(d, x) for x in fs if x.endswith(".rs")]
    children = {}
    for f in files:
        mp = modpath(root, f)
        for k in range(len(mp)):
            children.setdefault(tuple(mp[:k]), set()).add(mp[k])
    edges = {}
    for f in files:
        mp = modpath(root, f)
        with open(f) as fh:
            src = strip(fh.read())
        for r in refs(f, mp, src):
            p = 0
            while p < len(mp) and p < len(r) and mp[p] == r[p]:
                p += 1
            if p < len(mp) and p < len(r) and r[p] in children.get(tuple(mp[:p]), ()):
                uses = edges.setdefault(tuple(mp[:p]), {}).setdefault(mp[p], {})
                uses.setdefault(r[p], set()).add(os.path.relpath(f, root))
    return edges

def cycles(g):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in g.get(v, {}):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    for v in sorted(g):
        if v not in index: visit(v)
    return out

def check(root, layers):
    problems = []
    for level, g in sorted(graph(root).items()):
        where = "::".join(level) or "crate"
        for comp in cycles(g):
            detail = "; ".join(
                f"{a} -> {b} ({', '.join(sorted(g[a][b])[:2])})"
                for a in comp for b in sorted(g.get(a, {})) if b in comp)
            problems.append(f"{root}: cycle in {where}: {' <-> '.join(comp)}: {detail}")
        if not level and layers:
            for a in sorted(g):
                for b in sorted(g[a]):
                    if a in layers and b in layers and layers.index(b) < layers.index(a):
                        problems.append(
                            f"{root}: {a} uses {b}, a layer above it ({', '.join(sorted(g[a][b])[:3])})")
    return problems

def self_test():
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "low"))
        with open(os.path.join(d, "lib.rs"), "w") as f:
            f.write("pub mod high;\npub mod low;\n")
        with open(os.path.join(d, "high.rs"), "w") as f:
            f.write("use crate::low::thing;\n")
        with open(os.path.join(d, "low", "mod.rs"), "w") as f:
            f.write("pub mod a;\npub mod b;\n")
        with open(os.path.join(d, "low", "a.rs"), "w") as f:
            f.write("use super::{b::x, *};\n")
        with open(os.path.join(d, "low", "b.rs"), "w") as f:
            f.write("// use super::a; in a comment is not an import\n")
        assert check(d, ["high", "low"]) == [], check(d, ["high", "low"])
        with open(os.path.join(d, "low", "b.rs"), "a") as f:
            f.write("fn f() { crate::high::g(); super::a::h() }\n")
        found = check(d, ["high", "low"])
        assert any("low uses high" in p for p in found), found
        assert any("cycle in low: a <-> b" in p for p in found), found
    print("check-modules: self-test passed (a backward import and a sibling cycle are caught)")

def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    problems = []
    for root in CRATES:
        problems += check(root, LAYERS.get(root))
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit("check-modules: the module graph must run one way; see docs/ARCHITECTURE.md \"Layers\"")
    print("check-modules: no cycles, layers respected")

main()
