"""The reference interpreter: evaluates the IR directly, one node kind per method. It is small
on purpose: the oracle that faster executors are tested against.

Runtime values: tensors are NumPy values; structs are `fcore.Struct`; sequences are lists or
`tf.data.Dataset`s; client-placed values are lists (one member per client) unless all-equal;
server-placed and all-equal values are the member itself; functions are Python callables
taking one runtime argument (or none)."""

from __future__ import annotations

from fcore import structure
from fcore.execution import intrinsic_impls, values  # noqa: F401 (attaches "reference" rules)
from fcore.execution.context import register_executor
from fcore.execution.errors import ExecutionError, dataset_check_error, needs_num_clients
from fcore.intrinsics.definitions import INTRINSICS
from fcore.ir import nodes
from fcore.struct import Struct
from fcore.types import core


class Environment:
    __slots__ = ("names", "parent")

    def __init__(self, names=None, parent=None):
        self.names = names or {}
        self.parent = parent

    def lookup(self, name):
        env = self
        while env is not None:
            if name in env.names:
                return env.names[name]
            env = env.parent
        raise NameError(f"The name {name!r} is not bound.")


class Interpreter:
    """Evaluates IR nodes. `num_clients` is used only where no client-placed value fixes the
    number of clients (a broadcast materialised per client, `federated_eval` at CLIENTS)."""

    def __init__(self, num_clients=None, computation_name="computation", progress=None):
        self.num_clients = num_clients
        self.computation_name = computation_name
        self.progress = progress
        self.client_index = None
        self._coercions = {}  # call node -> whether its argument needs `coerce`

    def evaluate(self, node: nodes.Node, env: Environment):
        return getattr(self, "_" + type(node).__name__.lower())(node, env)

    def _reference(self, node, env):
        return env.lookup(node.name)

    def _selection(self, node, env):
        return self.evaluate(node.source, env)[node.index]

    def _struct(self, node, env):
        return Struct([(name, self.evaluate(element, env)) for name, element in node.elements])

    def _call(self, node, env):
        function = self.evaluate(node.function, env)
        if node.argument is None:
            return function(None)
        argument = self.evaluate(node.argument, env)
        if self._coerces(node):
            argument = self.coerce(argument, node.argument.type_signature,
                                   node.function.type_signature.parameter)
        return function(argument)

    def _coerces(self, node):
        """Whether a call's argument type differs from its parameter type (decided once per
        call node: comparing types is a walk over them)."""
        known = self._coercions.get(node)
        if known is None:
            known = self._coercions[node] = \
                node.argument.type_signature != node.function.type_signature.parameter
        return known

    def coerce(self, value, from_type, to_type):
        """A runtime value of `from_type` as one of `to_type`, which it is assignable to. Only
        the representation of placed values changes: an all-equal value (one member) given
        for one that is not (a list of members) becomes the list."""
        if isinstance(from_type, core.FederatedType) and isinstance(to_type, core.FederatedType):
            if from_type.all_equal and not to_type.all_equal:
                if to_type.placement.name == "CLIENTS":
                    return self.members(value, from_type)
                return [value]  # `{T}@SERVER`: the server's one member
            return value
        if isinstance(from_type, core.StructType) and isinstance(to_type, core.StructType):
            return Struct([(name, self.coerce(v, f, t)) for (name, t), f, v in
                           zip(to_type.items(), from_type, value)])
        return value

    def _lambda(self, node, env):
        def closure(argument):
            names = {} if node.parameter_name is None else {node.parameter_name: argument}
            return self.evaluate(node.body, Environment(names, env))
        return closure

    def _block(self, node, env):
        for name, value in node.locals:
            env = Environment({name: self.evaluate(value, env)}, env)
        return self.evaluate(node.result, env)

    def _intrinsic(self, node, env):
        implementation = INTRINSICS[node.uri].rule("reference")
        return lambda argument: implementation(self, node.type_signature, argument)

    def _literal(self, node, env):
        return node.value if isinstance(node.value, str) else node.value[()] \
            if node.value.ndim == 0 else node.value

    def _placement(self, node, env):
        return node.placement

    def _tfleaf(self, node, env):
        def run(argument):
            try:
                return self.run_leaf(node.computation, argument)
            except Exception as e:  # any TF failure: name the leaf and the client
                checked = dataset_check_error(e)
                if checked is not None:
                    raise type(checked)(f"{str(checked).rstrip('.')}, read by TF "
                                        f"computation '{node.name}' (in "
                                        f"'{self.computation_name}').") from e
                where = "" if self.client_index is None else f" on client {self.client_index}"
                raise ExecutionError(f"TF computation '{node.name}' failed{where} (in "
                                     f"'{self.computation_name}'): {type(e).__name__}: "
                                     f"{e}") from e
        run.is_client_work = True  # progress is reported for maps of TF work
        return run

    def run(self, computation, argument):
        """Runs `computation` on a runtime argument of its parameter type."""
        parameter_type = computation.type_signature.parameter
        if parameter_type is not None:
            argument = self.bind_functions(argument, parameter_type)
        return self.evaluate(self.prepare(computation), Environment())(argument)

    def prepare(self, computation):
        """The IR this interpreter evaluates for `computation` (subclasses rename it)."""
        return computation.ir

    def bind_functions(self, value, type_):
        """`value` with the computations given as arguments (`values.ComputationArgument`)
        made functions that this interpreter runs."""
        if isinstance(value, values.ComputationArgument):
            return self.evaluate(self.prepare(value.computation), Environment())
        if isinstance(type_, core.StructType) and isinstance(value, Struct) and \
                structure.contains(type_, _is_function):
            return Struct([(name, self.bind_functions(v, t))
                           for (name, t), v in zip(type_.items(), value)])
        return value

    def run_leaf(self, leaf, argument):
        """Runs a TF leaf (a `TFFunction`) on a runtime argument."""
        return leaf.run(argument)

    # Helpers for the intrinsics ----------------------------------------------------------

    def members(self, value, type_: core.FederatedType):
        """The per-client members of a client-placed value."""
        if not type_.all_equal:
            return value
        if self.num_clients is None:
            raise needs_num_clients(f"'{self.computation_name}'")
        return [value] * self.num_clients

    def count(self, what):
        if self.num_clients is None:
            raise needs_num_clients(what)
        return self.num_clients

    def per_client(self, function, members):
        report = self.progress is not None and getattr(function, "is_client_work", False)
        results = []
        outer = self.client_index
        members = list(members)
        for index, member in enumerate(members):
            self.client_index = index
            try:
                results.append(function(member))
            finally:
                self.client_index = outer
            if report and outer is None:
                self.progress(index + 1, len(members))
        return results


def _is_function(type_):
    return isinstance(type_, core.FunctionType)


def run(computation, argument, num_clients, context):
    """Runs `computation` (a `Computation`) on a runtime argument."""
    interpreter = Interpreter(num_clients, computation.name, context.progress)
    return interpreter.run(computation, argument)


register_executor("reference", run)
