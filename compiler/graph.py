"""The declaration graph of a model: which declaration uses which, as a networkx DiGraph.

Nodes are declaration keys (``"alpha"``, ``"interpolant"``, or ``"stdlib/schedules.tfm:vp_beta"``
for imported ones); an edge a -> b means a uses b. Cycles are errors; the evaluation order puts
every declaration after what it uses, ties broken by name so that the order is deterministic.
"""

from __future__ import annotations

import networkx as nx

MAX_CYCLES = 5


def build(uses: dict[str, set[str]], attrs: dict[str, dict] | None = None) -> nx.DiGraph:
    graph = nx.DiGraph()
    for node in uses:
        graph.add_node(node, **(attrs or {}).get(node, {}))
    for node, targets in uses.items():
        for target in targets:
            graph.add_edge(node, target)
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """Up to MAX_CYCLES simple cycles, each rotated to start at its smallest key."""
    found = []
    for cycle in nx.simple_cycles(graph):
        i = cycle.index(min(cycle))
        found.append(cycle[i:] + cycle[:i])
        if len(found) >= MAX_CYCLES:
            break
    return sorted(found)


def evaluation_order(graph: nx.DiGraph) -> list[str]:
    """Dependencies first. Nodes on or downstream of a cycle are left out."""
    blocked = set()
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
            blocked |= component
    blocked |= {n for b in list(blocked) for n in nx.ancestors(graph, b)}
    acyclic = graph.subgraph(n for n in graph if n not in blocked)
    return list(nx.lexicographical_topological_sort(acyclic.reverse(copy=True), key=str))


def to_dot(graph: nx.DiGraph, name: str) -> str:
    """Graphviz DOT text: declarations as boxes labelled by kind, imported ones dashed."""
    lines = [f'digraph "{name}" {{', "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for node in sorted(graph):
        data = graph.nodes[node]
        label = f"{data.get('label', node)}\\n({data.get('kind', '')})"
        style = ', style=dashed' if data.get("imported") else ""
        lines.append(f'  "{node}" [label="{label}"{style}];')
    for a, b in sorted(graph.edges):
        lines.append(f'  "{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines)
