"""Small analyses over IR: free names, and lifting federated calls into block bindings."""

from __future__ import annotations

from fcore.ir import nodes


def free_names(node: nodes.Node) -> set:
    """The names `node` references without binding them itself.

    Walks with an explicit stack (no recursion, so any depth works) and counts the binders
    in scope, so a long let-chain takes linear time."""
    free, bound, stack = set(), {}, [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):  # ("bind" or "unbind", name)
            action, name = item
            if action == "bind":
                bound[name] = bound.get(name, 0) + 1
            elif bound[name] == 1:
                del bound[name]
            else:
                bound[name] -= 1
        elif isinstance(item, nodes.Reference):
            if item.name not in bound:
                free.add(item.name)
        elif isinstance(item, nodes.Lambda):
            if item.parameter_name is None:
                stack.append(item.body)
            else:
                stack += [("unbind", item.parameter_name), item.body,
                          ("bind", item.parameter_name)]
        elif isinstance(item, nodes.Block):
            work = []
            for name, value in item.locals:
                work += [value, ("bind", name)]
            work.append(item.result)
            work += [("unbind", name) for name, _ in reversed(item.locals)]
            stack.extend(reversed(work))
        else:
            stack.extend(reversed(item.children()))
    return free


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


def uniquify(node: nodes.Node) -> nodes.Node:
    """`node` with every binder (lambda parameter, block local) renamed where needed so that
    each binds a name used by no other binder and by no free name of `node` (alpha-renaming).

    Scoped evaluation gives the same results before and after; executors that flatten
    scopes (the fast executor's streamed blocks) rely on it. A program that already has
    unique names, as tracing makes them, comes back as the same object."""
    used = set(free_names(node))
    return _Renamer(used).rename(node, {})


_UNBOUND = object()


class _Renamer:
    def __init__(self, used):
        self.used = used

    @staticmethod
    def _bind(scope, name, new):
        saved = (name, scope.get(name, _UNBOUND))
        scope[name] = new
        return saved

    @staticmethod
    def _restore(scope, saved):
        for name, old in reversed(saved):
            if old is _UNBOUND:
                del scope[name]
            else:
                scope[name] = old

    def binder(self, name):
        if name not in self.used:
            self.used.add(name)
            return name
        suffix = 1
        while f"{name}_{suffix}" in self.used:
            suffix += 1
        fresh = f"{name}_{suffix}"
        self.used.add(fresh)
        return fresh

    def rename(self, node, scope):
        """`node` renamed; `scope` (old name -> new name) is one dict, updated on entering a
        binder and restored on leaving it (linear in the length of a let-chain)."""
        if isinstance(node, nodes.Reference):
            new = scope.get(node.name, node.name)
            return node if new == node.name else nodes.Reference(new, node.type_signature)
        if isinstance(node, nodes.Lambda):
            if node.parameter_name is None:
                body = self.rename(node.body, scope)
                return node if body is node.body else nodes.Lambda(None, None, body)
            name = self.binder(node.parameter_name)
            saved = self._bind(scope, node.parameter_name, name)
            body = self.rename(node.body, scope)
            self._restore(scope, [saved])
            if name == node.parameter_name and body is node.body:
                return node
            return nodes.Lambda(name, node.parameter_type, body)
        if isinstance(node, nodes.Block):
            locals_, changed, saved = [], False, []
            for name, value in node.locals:
                new_value = self.rename(value, scope)
                new_name = self.binder(name)
                saved.append(self._bind(scope, name, new_name))
                changed |= new_value is not value or new_name != name
                locals_.append((new_name, new_value))
            result = self.rename(node.result, scope)
            self._restore(scope, saved)
            if not changed and result is node.result:
                return node
            return nodes.Block(locals_, result)
        if isinstance(node, nodes.Selection):
            source = self.rename(node.source, scope)
            return node if source is node.source else nodes.Selection(
                source, name=node.name, index=None if node.name is not None else node.index)
        if isinstance(node, nodes.Struct):
            elements = [(n, self.rename(e, scope)) for n, e in node.elements]
            if all(a is b for (_, a), (_, b) in zip(elements, node.elements)):
                return node
            return nodes.Struct(elements)
        if isinstance(node, nodes.Call):
            function = self.rename(node.function, scope)
            argument = None if node.argument is None else self.rename(node.argument, scope)
            if function is node.function and argument is node.argument:
                return node
            return nodes.Call(function, argument)
        return node  # intrinsics, literals, placements, TF leaves: no names


def inline_lambdas(node: nodes.Node) -> nodes.Node:
    """`node` with the lambdas it calls directly inlined and nested blocks hoisted into the
    block that holds them, for a program whose binders are unique (`uniquify`).

    `(x -> body)(y)` becomes `body` with `x` replaced by `y` when the argument is a name,
    else `(let x=arg in body)`; `(let a=(let b=e in f) in g)` becomes `(let b=e,a=f in g)`.
    Lambda bodies stay lambda bodies (they run once per call). Unique names make both
    rewrites capture-free, and evaluation is strict, so results are unchanged. An executor
    that schedules a block's bindings (the fast executor) then sees a nested computation's
    client work and aggregations beside the caller's, in one pass over the clients."""
    return _Inliner().rewrite(node)


class _Inliner:
    def __init__(self):
        self._taken = None  # every name in the program, once a fresh one is needed

    def rewrite(self, node):
        if self._taken is None:
            self._taken = _all_names(node)
        if isinstance(node, nodes.Call) and isinstance(node.function, nodes.Lambda) and (
                node.argument is None or
                node.argument.type_signature == node.function.parameter_type):
            # (an argument of another type, such as an all-equal value for a `{T}@CLIENTS`
            # parameter, keeps the call: the interpreter converts it)
            function = node.function
            body = self.rewrite(function.body)
            if function.parameter_name is None:
                return body
            argument = self.rewrite(node.argument)
            if _trivial(argument):
                return self.rewrite(substitute(body, {function.parameter_name: argument}))
            return self._hoisted([(function.parameter_name, argument)], body)
        if isinstance(node, nodes.Block):
            return self._hoisted([(n, self.rewrite(v)) for n, v in node.locals],
                                 self.rewrite(node.result))
        if isinstance(node, nodes.Lambda):
            body = self.rewrite(node.body)
            return node if body is node.body else nodes.Lambda(
                node.parameter_name, node.parameter_type, body)
        if isinstance(node, nodes.Call):
            function = self.rewrite(node.function)
            argument = None if node.argument is None else self.rewrite(node.argument)
            if function is node.function and argument is node.argument:
                return node
            return nodes.Call(function, argument)
        if isinstance(node, nodes.Struct):
            elements = [(n, self.rewrite(e)) for n, e in node.elements]
            if all(a is b for (_, a), (_, b) in zip(elements, node.elements)):
                return node
            return nodes.Struct(elements)
        if isinstance(node, nodes.Selection):
            source = self.rewrite(node.source)
            if isinstance(source, nodes.Struct):
                return source.elements[node.index][1]
            return node if source is node.source else nodes.Selection(
                source, name=node.name, index=None if node.name is not None else node.index)
        return node

    def _hoisted(self, locals_, result):
        """One flat block: nested blocks hoisted; a local bound to a struct has its
        non-trivial elements bound to fresh names of their own, and the struct of names (or
        a plain alias) is forwarded into later locals and the result, where selections from
        it simplify (`let s=<a=f(x),b=y> in s.b` is `let s_a=f(x) in y`)."""
        flat, forward = [], {}

        def bind(name, value):
            value = substitute(value, forward)
            if isinstance(value, nodes.Block):
                for inner_name, inner in value.locals:
                    bind(inner_name, inner)
                value = substitute(value.result, forward)
            if isinstance(value, nodes.Struct) and not _trivial(value):
                value = nodes.Struct([(n, e if _trivial(e) else self._bound(flat, name, e))
                                      for n, e in value.elements])
            if _trivial(value):
                forward[name] = value
            else:
                flat.append((name, value))

        for name, value in locals_:
            bind(name, value)
        result = substitute(result, forward)
        if isinstance(result, nodes.Block):
            for name, value in result.locals:
                bind(name, value)
            result = substitute(result.result, forward)
        return nodes.Block(flat, result) if flat else result

    def _bound(self, flat, base, value):
        """A reference to `value`, bound in `flat` under a name no other binder uses."""
        index, name = 1, f"{base}_e"
        while name in self._taken:
            index += 1
            name = f"{base}_e{index}"
        self._taken.add(name)
        flat.append((name, value))
        return nodes.Reference(name, value.type_signature)


def _trivial(node) -> bool:
    """A name, a selection from one, or a struct of such: free to copy (nothing runs)."""
    while isinstance(node, nodes.Selection):
        node = node.source
    if isinstance(node, nodes.Struct):
        return all(_trivial(e) for _, e in node.elements)
    return isinstance(node, nodes.Reference)


def _all_names(node) -> set:
    """Every name bound or referenced anywhere in `node`."""
    names, stack = set(), [node]
    while stack:
        item = stack.pop()
        if isinstance(item, nodes.Reference):
            names.add(item.name)
        elif isinstance(item, nodes.Lambda):
            if item.parameter_name is not None:
                names.add(item.parameter_name)
            stack.append(item.body)
        elif isinstance(item, nodes.Block):
            names.update(name for name, _ in item.locals)
            stack.extend(value for _, value in item.locals)
            stack.append(item.result)
        else:
            stack.extend(item.children())
    return names


def substitute(node, mapping):
    """`node` with its free references to the names in `mapping` replaced by those nodes,
    and selections from structs that this makes literal simplified (`<a,b>[1]` is `b`).
    Meant for programs whose names are unique (`uniquify`): nothing can be captured."""
    if not mapping:
        return node
    if isinstance(node, nodes.Reference):
        return mapping.get(node.name, node)
    if isinstance(node, nodes.Selection):
        source = substitute(node.source, mapping)
        if isinstance(source, nodes.Struct):
            return source.elements[node.index][1]
        return node if source is node.source else nodes.Selection(
            source, name=node.name, index=None if node.name is not None else node.index)
    if isinstance(node, nodes.Struct):
        return nodes.Struct([(n, substitute(e, mapping)) for n, e in node.elements])
    if isinstance(node, nodes.Call):
        return nodes.Call(substitute(node.function, mapping),
                          None if node.argument is None else substitute(node.argument, mapping))
    if isinstance(node, nodes.Lambda):
        return nodes.Lambda(node.parameter_name, node.parameter_type,
                            substitute(node.body, mapping))
    if isinstance(node, nodes.Block):
        return nodes.Block([(n, substitute(v, mapping)) for n, v in node.locals],
                           substitute(node.result, mapping))
    return node
