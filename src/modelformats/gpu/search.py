"""How a policy searches GPU layouts: `SearchSpace` (what a search may ask) and the shipped searches.

A search gets the request resolved once (`ResolvedRequest`: weights, rule, limits, capability floor)
wrapped in a `SearchSpace`, and returns the option it chose (None: nothing fits) and every option it
tried (for the error that explains why nothing fits). `seed_search` takes the first layout that fits
in the rule's preferred order; `cost_search` the cheapest that fits anywhere in the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from modelformats.gpu.catalogue import GPU_CATALOGUE, GpuType, get_gpu
from modelformats.gpu.rules import GpuRule
from modelformats.gpu.sizing import GpuOption, ResolvedRequest, build_option

__all__ = ["GpuSearch", "SearchResult", "SearchSpace", "cost_search", "seed_search"]

# The chosen option (None: nothing fits) and every option tried.
SearchResult = tuple[GpuOption | None, list[GpuOption]]


class SearchSpace:
    """The layouts a search may consider for one resolved request, in the catalogue's terms."""

    def __init__(self, resolved: ResolvedRequest) -> None:
        self.resolved = resolved

    @property
    def rule(self) -> GpuRule:
        return self.resolved.rule

    def capable(self, gpus: Iterable[GpuType]) -> list[GpuType]:
        """The GPU types that meet the request's compute-capability floor."""
        return [g for g in gpus if g.compute_capability >= self.resolved.capability.minimum]

    def preferred(self) -> list[GpuType]:
        """The rule's GPU (or its preference order; the whole catalogue when it names none)."""
        s = self.rule.settings
        if s.gpu is not None:
            return [get_gpu(s.gpu)]
        return [get_gpu(n) for n in s.prefer] or list(GPU_CATALOGUE)

    def option(self, gpu: GpuType, count: int, nodes: int = 1, modifier: str = "") -> GpuOption | None:
        """`count x nodes` GPUs of `gpu`, sized; None when the engine cannot use that layout."""
        return build_option(self.resolved, gpu, count, nodes, modifier)

    def single_node(self, gpus: list[GpuType], *, counts_first: bool) -> Iterator[GpuOption]:
        """One node of each type and count (the rule's count, else 1..max); by count first or by type first."""
        fixed = self.rule.settings.gpu_count
        top = max((g.max_count for g in gpus), default=1)
        counts = [fixed] if fixed is not None else list(range(1, top + 1))
        if counts_first:
            pairs = [(g, n) for n in counts for g in gpus if n <= g.max_count]
        else:
            pairs = [(g, n) for g in gpus for n in counts if n <= g.max_count]
        for gpu, n in pairs:
            option = self.option(gpu, n)
            if option is not None:
                yield option

    def multi_node(self, gpus: list[GpuType]) -> Iterator[GpuOption]:
        """Full nodes of multi-node-capable types, 2..max_nodes of them (none when the rule fixes a count)."""
        if self.rule.settings.gpu_count is not None:
            return
        for nodes in range(2, self.resolved.request.max_nodes + 1):
            for gpu in gpus:
                if gpu.multi_node:
                    option = self.option(gpu, gpu.max_count, nodes)
                    if option is not None:
                        yield option


GpuSearch = Callable[[SearchSpace], SearchResult]


def cheapest(options: list[GpuOption]) -> GpuOption:
    """Price, then fewer GPUs, then more memory, then catalogue order."""
    index = {g.name: i for i, g in enumerate(GPU_CATALOGUE)}
    return min(
        options,
        key=lambda o: (
            o.choice.price_per_hour,
            o.choice.total_gpus,
            -o.choice.usable_bytes,
            index[o.choice.gpu.name],
        ),
    )


def seed_search(space: SearchSpace) -> SearchResult:
    """The rule's preferred GPUs in order, fewest GPUs first; the first layout that fits."""
    tried: list[GpuOption] = []
    gpus = space.capable(space.preferred())
    for option in space.single_node(gpus, counts_first=True):
        tried.append(option)
        if option.fits:
            return option, tried
    for option in space.multi_node(gpus):
        tried.append(option)
        if option.fits:
            return option, tried
    return None, tried


def cost_search(space: SearchSpace) -> SearchResult:
    """Every capable GPU in the catalogue; the cheapest single node that fits, else the first multi-node."""
    gpus = space.capable(GPU_CATALOGUE)
    tried = list(space.single_node(gpus, counts_first=False))
    fitting = [o for o in tried if o.fits]
    if not fitting:
        # Beyond one node only when no single node holds the model.
        for option in space.multi_node(gpus):
            tried.append(option)
            if option.fits:
                fitting.append(option)
                break
    return (cheapest(fitting) if fitting else None), tried
