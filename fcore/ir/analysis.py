"""Small analyses over IR: free names, and lifting federated calls into block bindings."""

from __future__ import annotations

from fcore.ir import nodes


def free_names(node: nodes.Node) -> set:
    """The names `node` references without binding them itself."""
    if isinstance(node, nodes.Reference):
        return {node.name}
    if isinstance(node, nodes.Lambda):
        return free_names(node.body) - {node.parameter_name}
    if isinstance(node, nodes.Block):
        names, bound = set(), set()
        for name, value in node.locals:
            names |= free_names(value) - bound
            bound.add(name)
        return names | (free_names(node.result) - bound)
    names = set()
    for child in node.children():
        names |= free_names(child)
    return names


def lift_calls(locals_, result, uris, fresh):
    """Block bindings and result in which every call of an intrinsic in `uris` nested inside
    an expression (not inside a lambda) has its own binding, named by `fresh()`.

    `(let a=f(federated_map(<g,x>)) in federated_sum(a))` becomes
    `(let _l1=federated_map(<g,x>),a=f(_l1),_l2=federated_sum(a) in _l2)`."""
    out = []

    def lift(node, top):
        if isinstance(node, nodes.Call):
            argument = None if node.argument is None else lift(node.argument, False)
            call = node if argument is node.argument else nodes.Call(node.function, argument)
            if not top and isinstance(node.function, nodes.Intrinsic) and \
                    node.function.uri in uris:
                name = fresh()
                out.append((name, call))
                return nodes.Reference(name, call.type_signature)
            return call
        if isinstance(node, nodes.Struct):
            elements = [(n, lift(e, False)) for n, e in node.elements]
            if all(a is b for (_, a), (_, b) in zip(elements, node.elements)):
                return node
            return nodes.Struct(elements)
        if isinstance(node, nodes.Selection):
            source = lift(node.source, False)
            return node if source is node.source else nodes.Selection(
                source, name=node.name, index=None if node.name else node.index)
        return node  # references, literals, lambdas (their bodies run later), blocks, ...

    for name, value in locals_:
        out.append((name, lift(value, True)))
    final = lift(result, False)
    return out, final
