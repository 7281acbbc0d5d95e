"""Modal's GPU types as one table: memory, compute capability, count limit, NVLink, price and its source.

Modal's client upper-cases a `gpu=` string and splits `TYPE:COUNT`, but it never checks the type
name (`modal/_utils/function_utils.py: parse_gpu_config` in modal 1.6.4; `gpu="NOT-A-GPU"` passes
locally and fails on Modal's server), so this table is the allowlist. `tools/check_gpu_catalogue.py`
compares it with what the installed client parses.

Facts come from shared/notes/modal.md (researched 2026-11-24) unless a row says otherwise. Every
price is a *secondary* quote of https://modal.com/pricing: check the live page before quoting it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from modelformats.errors import InvalidRequestError, UnknownGpuError

__all__ = [
    "GPU_CATALOGUE",
    "GpuSelection",
    "GpuType",
    "PriceQuote",
    "catalogue_dicts",
    "format_compute_capability",
    "get_gpu",
    "parse_compute_capability",
    "parse_gpu",
    "render_catalogue",
]

GB = 10**9
GIB = 2**30
MIB = 2**20

_TECHBYTES = "https://techbytes.app/posts/serverless-gpu-pricing-matrix-modal-replicate-lambda-2026/"
_TECHBYTES_DATE = "2026-05-07"
# shared/notes/modal.md section 2: "a third-party note dated 2026-07-18 gives the rest".
_THIRD_PARTY_NOTE = "third-party note quoting https://modal.com/pricing (shared/notes/modal.md section 2)"
_THIRD_PARTY_DATE = "2026-07-18"
_GPU_GUIDE = "https://modal.com/docs/guide/gpu"
_CUDA_GPUS = "https://developer.nvidia.com/cuda-gpus"

# On every part with both figures, nvidia-smi's MiB total reads 316-925 MiB above the total the engine
# sees (A10 316, T4 430, H100 561, H200 606, A100-40GB 621, B300 925; the sources are each entry's
# `reported_memory_source`). Where only nvidia-smi's total is known, the engine's is taken 1 GiB below it.
NVIDIA_SMI_MARGIN_BYTES = GIB


@dataclass(frozen=True, kw_only=True, slots=True)
class PriceQuote:
    """Price of one GPU for one hour, with where the number came from."""

    usd_per_hour: float
    source: str
    date: str
    # True: a third party quoting Modal's pricing page, not Modal itself.
    secondary: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "usd_per_hour": self.usd_per_hour,
            "source": self.source,
            "date": self.date,
            "secondary": self.secondary,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuType:
    """One GPU type Modal offers, under the exact string Modal's `gpu=` takes."""

    name: str
    # Other strings Modal takes for the same type ("A100" is the 40 GB part; "A10G" is "A10").
    aliases: tuple[str, ...] = ()
    architecture: str
    # Vendor/Modal figure in decimal GB (10**9 bytes).
    memory_bytes: int
    # The total the engine sees, as a public log or nvidia-smi output reports it for this part
    # (torch.cuda.mem_get_info's total, which vLLM prints as total_gpu_memory, where one was found;
    # else nvidia-smi's MiB total, which is a few hundred MiB above it).
    reported_memory_bytes: int
    # True: `reported_memory_bytes` is the engine's own figure (torch, vLLM, CUDA); False: nvidia-smi's.
    reported_by_engine: bool = False
    # Where `reported_memory_bytes` comes from (the quoted figure and a URL).
    reported_memory_source: str
    # A lower usable figure the provider states, which caps `usable_memory_bytes` (B200).
    provider_usable_bytes: int | None = None
    compute_capability: tuple[int, int]
    # GPUs of this type one container may request (all on one host).
    max_count: int
    # False: Modal's list does not state the limit, so plans stay within the stated `max_count`.
    max_count_stated: bool = True
    nvlink: bool
    # Whether this type may be planned across nodes (`@modal.clustered`, every container `TYPE:8`).
    multi_node: bool = False
    price: PriceQuote
    notes: tuple[str, ...] = ()

    @property
    def usable_memory_bytes(self) -> int:
        """What plans are sized against (vLLM's budget is gpu_memory_utilization x the total the engine sees):
        the engine's own figure, else nvidia-smi's less NVIDIA_SMI_MARGIN_BYTES, capped by the provider's."""
        total = self.reported_memory_bytes - (0 if self.reported_by_engine else NVIDIA_SMI_MARGIN_BYTES)
        return total if self.provider_usable_bytes is None else min(total, self.provider_usable_bytes)

    @property
    def price_per_hour(self) -> float:
        return self.price.usd_per_hour

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "architecture": self.architecture,
            "memory_bytes": self.memory_bytes,
            "usable_memory_bytes": self.usable_memory_bytes,
            "reported_memory_bytes": self.reported_memory_bytes,
            "reported_memory_source": self.reported_memory_source,
            "reported_by_engine": self.reported_by_engine,
            "provider_usable_bytes": self.provider_usable_bytes,
            "compute_capability": format_compute_capability(self.compute_capability),
            "max_count": self.max_count,
            "max_count_stated": self.max_count_stated,
            "nvlink": self.nvlink,
            "multi_node": self.multi_node,
            "price_per_hour": self.price.usd_per_hour,
            "price": self.price.to_dict(),
            "notes": list(self.notes),
        }


def _quote(usd: float, *, techbytes: bool) -> PriceQuote:
    if techbytes:
        return PriceQuote(usd_per_hour=usd, source=_TECHBYTES, date=_TECHBYTES_DATE)
    return PriceQuote(usd_per_hour=usd, source=_THIRD_PARTY_NOTE, date=_THIRD_PARTY_DATE)


# Cheapest first. Compute capabilities: NVIDIA's CUDA GPU list (_CUDA_GPUS); the rest: modal.md section 2.
GPU_CATALOGUE: tuple[GpuType, ...] = (
    GpuType(
        name="T4",
        architecture="Turing",
        memory_bytes=16 * GB,
        # torch's total; nvidia-smi shows 15360MiB on the same part (deepseek-ai/DeepSeek-R1#546).
        reported_memory_bytes=round(14.58 * GIB),
        reported_by_engine=True,
        reported_memory_source=(
            "torch: 'GPU 0 has a total capacty of 14.58 GiB' on 4 x Tesla T4 (vLLM), "
            "https://github.com/datawhalechina/self-llm/issues/162; nvidia-smi '15360MiB' on Tesla T4, "
            "https://github.com/deepseek-ai/DeepSeek-R1/issues/546"
        ),
        compute_capability=(7, 5),
        max_count=8,
        nvlink=False,
        price=_quote(0.59, techbytes=True),
        notes=("No bfloat16: vLLM runs bf16 checkpoints as float16 (vllm/platforms/cuda.py:257).",),
    ),
    GpuType(
        name="L4",
        architecture="Ada Lovelace",
        memory_bytes=24 * GB,
        reported_memory_bytes=23034 * MIB,
        reported_memory_source=(
            "nvidia-smi '23034MiB' on NVIDIA L4, https://github.com/NVIDIA/TensorRT-LLM/issues/2398 "
            "(no torch/vLLM total found; cudaMemGetInfo's is lower than nvidia-smi's)"
        ),
        compute_capability=(8, 9),
        max_count=8,
        nvlink=False,
        price=_quote(0.80, techbytes=True),
    ),
    GpuType(
        name="A10",
        aliases=("A10G",),
        architecture="Ampere",
        memory_bytes=24 * GB,
        # torch's total; nvidia-smi shows 23028MiB on A10 (vllm#10034) and on A10G (TensorRT-LLM#7818).
        reported_memory_bytes=round(22.18 * GIB),
        reported_by_engine=True,
        reported_memory_source=(
            "torch: 'GPU 0 has a total capacity of 22.18 GiB' on one A10 (vllm serve), "
            "https://github.com/OpenBMB/MiniCPM-V/issues/640; nvidia-smi '23028MiB' on NVIDIA A10, "
            "https://github.com/vllm-project/vllm/issues/10034, and on NVIDIA A10G, "
            "https://github.com/NVIDIA/TensorRT-LLM/issues/7818"
        ),
        compute_capability=(8, 6),
        # Modal: "up to 4 for A10" (the only type below 8).
        max_count=4,
        nvlink=False,
        price=_quote(1.10, techbytes=False),
        notes=("Modal does not distinguish A10G from A10; 'A10G' is a legacy alias.",),
    ),
    GpuType(
        name="L40S",
        architecture="Ada Lovelace",
        memory_bytes=48 * GB,
        reported_memory_bytes=46068 * MIB,
        reported_memory_source=(
            "nvidia-smi '46068MiB' on NVIDIA L40S, https://github.com/wtdcode/vllm-backport/issues/14 "
            "(no torch/vLLM total found; cudaMemGetInfo's is lower than nvidia-smi's)"
        ),
        compute_capability=(8, 9),
        max_count=8,
        nvlink=False,
        price=_quote(1.95, techbytes=True),
        notes=(
            "Modal's recommended default for inference.",
            "No NVLink: vLLM advises pipeline parallelism over tensor parallelism across these GPUs.",
        ),
    ),
    GpuType(
        name="A100-40GB",
        aliases=("A100",),
        architecture="Ampere",
        memory_bytes=40 * GB,
        # CUDA's total (cudaGetDeviceProperties, the figure torch's get_device_properties reports).
        reported_memory_bytes=42298834944,
        reported_by_engine=True,
        reported_memory_source=(
            "CUDA deviceQuery 'Total amount of global memory: 40339 MBytes (42298834944 bytes)' on "
            "'NVIDIA A100-SXM4-40GB', https://github.com/bottlerocket-os/bottlerocket/pull/3873; nvidia-smi "
            "'40960MiB' for Modal's A100 40GB, https://github.com/modal-labs/modal-client/pull/2797"
        ),
        compute_capability=(8, 0),
        max_count=8,
        # Not stated by Modal; 8-GPU A100 hosts are HGX (SXM4) boards with NVLink.
        nvlink=True,
        price=_quote(2.10, techbytes=False),
        notes=("'A100' may be silently upgraded to the 80 GB part at the same price; plans assume 40 GB.",),
    ),
    GpuType(
        name="A100-80GB",
        architecture="Ampere",
        memory_bytes=80 * GB,
        reported_memory_bytes=81920 * MIB,
        reported_memory_source=(
            "nvidia-smi '81920MiB' for Modal's A100 80GB (Modal's list of the totals nvidia-smi reports on its "
            "GPU types), https://github.com/modal-labs/modal-client/pull/2797 (no torch/vLLM total found)"
        ),
        compute_capability=(8, 0),
        max_count=8,
        nvlink=True,
        price=_quote(2.50, techbytes=True),
    ),
    GpuType(
        name="RTX-PRO-6000",
        architecture="Blackwell",
        # NVIDIA's spec; Modal does not state the memory.
        memory_bytes=96 * GB,
        reported_memory_bytes=97887 * MIB,
        reported_memory_source=(
            "nvidia-smi '97887MiB' on 'NVIDIA RTX PRO 6000 Blac...', "
            "https://github.com/vllm-project/vllm/issues/27542 (no torch/vLLM total found)"
        ),
        compute_capability=(12, 0),
        # Modal's list states no per-container limit: plan one until it does.
        max_count=1,
        max_count_stated=False,
        nvlink=False,
        price=_quote(3.03, techbytes=False),
        notes=("Memory is NVIDIA's figure and the count limit is not stated by Modal; one GPU is planned.",),
    ),
    GpuType(
        name="H100",
        architecture="Hopper",
        memory_bytes=80 * GB,
        # vLLM's own figure; nvidia-smi shows 81559MiB on H100 80GB HBM3 (vllm#27508).
        reported_memory_bytes=round(79.10 * GIB),
        reported_by_engine=True,
        reported_memory_source=(
            "vLLM: 'total_gpu_memory=79.10GiB' in a log that loads the NVIDIA_H100_80GB_HBM3 MoE config, "
            "https://github.com/vllm-project/vllm/pull/10927; nvidia-smi '81559MiB' on NVIDIA H100 80GB HBM3, "
            "https://github.com/vllm-project/vllm/issues/27508"
        ),
        compute_capability=(9, 0),
        max_count=8,
        nvlink=True,
        multi_node=True,
        price=_quote(3.95, techbytes=True),
        notes=("All SXM. May be upgraded to H200 at the H100 price; 'H100!' prevents that. Plans assume 80 GB.",),
    ),
    GpuType(
        name="H200",
        architecture="Hopper",
        memory_bytes=141 * GB,
        # vLLM's own figure; nvidia-smi shows 143771MiB on NVIDIA H200 (same host, same repository).
        reported_memory_bytes=round(139.81 * GIB),
        reported_by_engine=True,
        reported_memory_source=(
            "vLLM 0.10.2: 'Free memory on device (139.21/139.81 GiB) on startup' in a log that loads the "
            "E=512,N=256,device_name=NVIDIA_H200 MoE config, https://github.com/sungwon-chae/arxiv_confi/blob/"
            "4a052075255d08515b67b11a7e121db85912e341/tmp_memo.md; nvidia-smi '143771MiB' on NVIDIA H200 (same "
            "host), https://github.com/sungwon-chae/arxiv_confi/blob/f9f9ce13d15d0d7adc8848d1856b16fc99894e3b/"
            "tmp_memo.md, and 143,771 MiB for Modal's H200, https://thundergolfer.com/blog/nvidia-gpu-memory-capacity"
        ),
        compute_capability=(9, 0),
        max_count=8,
        nvlink=True,
        multi_node=True,
        price=_quote(4.54, techbytes=False),
    ),
    GpuType(
        name="B200",
        architecture="Blackwell",
        memory_bytes=192 * GB,
        # modal.md: "~180 GB usable (192 nominal)", below nvidia-smi's 183359 MiB less the margin (191.19 GB).
        provider_usable_bytes=180 * GB,
        reported_memory_bytes=183359 * MIB,
        reported_memory_source=(
            "nvidia-smi '183359MiB' on NVIDIA B200, https://github.com/NVIDIA/TensorRT-LLM/issues/10278 "
            "(no torch/vLLM total found)"
        ),
        compute_capability=(10, 0),
        max_count=8,
        nvlink=True,
        multi_node=True,
        price=_quote(6.25, techbytes=False),
        notes=("'B200+' means B200 or B300, billed as B200; code must run on both (CUDA 13.1+).",),
    ),
    GpuType(
        name="B300",
        architecture="Blackwell Ultra",
        memory_bytes=288 * GB,
        # vLLM's own figure; nvidia-smi shows 275040MiB on the same card (same page).
        reported_memory_bytes=round(267.69 * GIB),
        reported_by_engine=True,
        reported_memory_source=(
            "vLLM 0.26.0: 'Free memory on device (267.08/267.69 GiB) on startup' on one 'NVIDIA B300 SXM6 AC' "
            "(nvidia-smi '275040MiB' on the same page), https://github.com/johnpfeiffer/source.johnpfeiffer.github.io"
            "/blob/4105624130e7afb3d96e611be42f76a44b1c56ae/content/ai/b300-deepseek-0731.md"
        ),
        compute_capability=(10, 3),
        max_count=8,
        nvlink=True,
        multi_node=True,
        price=_quote(7.10, techbytes=False),
        notes=("Needs CUDA 13.1+ in the image.",),
    ),
)

_BY_NAME: Mapping[str, GpuType] = MappingProxyType(
    {key.upper(): gpu for gpu in GPU_CATALOGUE for key in (gpu.name, *gpu.aliases)}
)
# Modal's suffixes: "H100!" = never upgrade to H200; "B200+" = B200 or B300, billed as B200.
_MODIFIERS: Mapping[str, str] = MappingProxyType({"!": "H100", "+": "B200"})
_GPU_STRING = re.compile(r"^(?P<type>[A-Za-z0-9-]+?)(?P<modifier>[!+]?)(?::(?P<count>[^:]*))?$")


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuSelection:
    """A parsed Modal `gpu=` string: type, count, and Modal's `!`/`+` suffix."""

    gpu: GpuType
    count: int = 1
    modifier: str = ""

    @property
    def modal_string(self) -> str:
        """The string for Modal's `gpu=`: `H100`, `H100:2`, `H100!:8`."""
        base = f"{self.gpu.name}{self.modifier}"
        return base if self.count == 1 else f"{base}:{self.count}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu.name,
            "count": self.count,
            "modifier": self.modifier,
            "modal": self.modal_string,
        }


def _known() -> list[str]:
    return [gpu.name for gpu in GPU_CATALOGUE]


def get_gpu(name: str) -> GpuType:
    """The catalogue entry for a Modal type string, any case, aliases included (`a10g` -> A10)."""
    gpu = _BY_NAME.get(name.strip().upper())
    if gpu is None:
        raise UnknownGpuError(name, _known())
    return gpu


def parse_gpu(value: str) -> GpuSelection:
    """Parse Modal's `TYPE[!|+][:COUNT]` (`"h100:2"`, `"A10G"`, `"H100!:8"`) against the catalogue."""
    match = _GPU_STRING.match(value.strip())
    if match is None:
        raise InvalidRequestError(
            f"GPU {value!r} is not of the form TYPE or TYPE:COUNT (Modal's gpu= syntax), e.g. 'H100:2'."
        )
    gpu = get_gpu(match["type"])
    modifier = match["modifier"]
    if modifier and _MODIFIERS[modifier] != gpu.name:
        raise InvalidRequestError(
            f"GPU {value!r}: the suffix {modifier!r} exists only as '{_MODIFIERS[modifier]}{modifier}' "
            f"('!' keeps an H100 from being upgraded, '+' lets a B200 run on a B300). Drop the suffix."
        )
    count_text = match["count"]
    count = 1
    if count_text is not None:
        if not count_text.isdigit() or int(count_text) < 1:
            raise InvalidRequestError(
                f"GPU count {count_text!r} in {value!r} must be a positive integer; write e.g. '{gpu.name}:2'."
            )
        count = int(count_text)
    if count > gpu.max_count:
        stated = "" if gpu.max_count_stated else " (Modal states no limit; modelformats plans one)"
        raise InvalidRequestError(
            f"GPU {value!r} asks for {count} x {gpu.name}; one Modal container takes at most "
            f"{gpu.max_count}{stated}. Use '{gpu.name}:{gpu.max_count}' or a larger GPU type."
        )
    return GpuSelection(gpu=gpu, count=count, modifier=modifier)


def parse_compute_capability(value: str | float | tuple[int, int]) -> tuple[int, int]:
    """`"8.9"`, `8.9` or `(8, 9)` -> `(8, 9)`."""
    if isinstance(value, tuple):
        return (int(value[0]), int(value[1]))
    text = str(value).strip()
    major, _, minor = text.partition(".")
    if not (major.isdigit() and (minor.isdigit() or minor == "")) or len(minor) > 1:
        raise InvalidRequestError(f"Compute capability {value!r} is not of the form MAJOR.MINOR, e.g. '8.9'.")
    return (int(major), int(minor or 0))


def format_compute_capability(value: tuple[int, int]) -> str:
    return f"{value[0]}.{value[1]}"


def catalogue_dicts() -> list[dict[str, Any]]:
    """The catalogue as JSON-ready rows (for `modelformats gpus --json`)."""
    return [gpu.to_dict() for gpu in GPU_CATALOGUE]


def render_catalogue() -> str:
    """The catalogue as a text table, with the sources of its prices."""
    header = ("GPU", "aliases", "arch", "memory", "CC", "max", "NVLink", "$/h", "price source")
    rows = [header]
    for gpu in GPU_CATALOGUE:
        memory = f"{gpu.memory_bytes / GB:.0f} GB"
        if gpu.usable_memory_bytes != gpu.memory_bytes:
            memory += f" ({gpu.usable_memory_bytes / GB:.0f} usable)"
        source = "techbytes.app" if gpu.price.source == _TECHBYTES else "third-party note"
        rows.append(
            (
                gpu.name,
                ", ".join(gpu.aliases) or "-",
                gpu.architecture,
                memory,
                format_compute_capability(gpu.compute_capability),
                str(gpu.max_count) + ("" if gpu.max_count_stated else "*"),
                "yes" if gpu.nvlink else "no",
                f"{gpu.price_per_hour:.2f}",
                f"{source}, {gpu.price.date}" + (" (secondary)" if gpu.price.secondary else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [
        "",
        "Prices are per GPU-hour, secondary quotes of https://modal.com/pricing: check the live page.",
        "* Modal states no per-container limit for this type; modelformats plans one.",
        "Modal's client does not check GPU names (any string reaches its server); modelformats does.",
        f"Sources: {_GPU_GUIDE}; compute capabilities {_CUDA_GPUS}.",
    ]
    return "\n".join(lines)
