"""The `vllm serve` argv for a verdict that loads, with its requirements, environment (VLLM_PLUGINS), install
overrides and notes. Every argv built here is parsed by the real vLLM of its profile in `nox -s vllm_compat`."""

from __future__ import annotations

import json

from modelformats.engines.base import EngineCommand, LoadVerdict, RuntimeSpec, WeightsSpec
from modelformats.engines.vllm_version import VllmAtVersion
from modelformats.errors import EngineCannotLoadError, InvalidRequestError
from modelformats.formats.base import VllmQuantPlugin
from modelformats.vllm_plugin._versions import GGUF_PLUGIN_NAME, OUR_PLUGIN_NAME

__all__ = ["VllmCommands"]


class VllmCommands(VllmAtVersion):
    """`VllmEngine.command` and its parts."""

    def command(self, weights: WeightsSpec, runtime: RuntimeSpec, verdict: LoadVerdict) -> EngineCommand:
        """`vllm serve` for weights already downloaded to `weights.model` (a file for GGUF, else a dir).

        `verdict` is this engine's `check(weights)`, computed once by the caller.
        """
        if not verdict.loads:
            raise EngineCannotLoadError(
                f"{self._who} cannot load {weights.repo_id!r}: {'; '.join(verdict.reasons)}",
                reasons=verdict.reasons,
            )
        is_gguf = weights.container == "gguf-file"
        plugin = self._quant_plugin(weights)
        self._check_plugin_limits(weights, runtime, plugin)
        argv = ["vllm", "serve", weights.model]
        # GGUF: a local .gguf makes vLLM set quantization and load format to gguf itself (0.23:
        # vllm/engine/arg_utils.py:1553-1554; plugin: vllm_gguf_plugin/plugin.py:59-66). Other formats:
        # vLLM reads quantization_config from config.json (vllm/config/model.py:1065-1066 in 0.23,
        # :1454-1455 in 0.33), and an explicit --quantization that differs is an error there.
        if weights.quantization_flag and weights.quantization:
            argv += ["--quantization", weights.quantization]
        if weights.tokenizer:
            argv += ["--tokenizer", weights.tokenizer]
        if weights.hf_config_path:
            argv += ["--hf-config-path", weights.hf_config_path]
        argv += [
            "--served-model-name", runtime.served_model_name,
            "--dtype", runtime.dtype,
            "--max-model-len", str(runtime.max_model_len),
            "--max-num-seqs", str(runtime.max_num_seqs),
            "--gpu-memory-utilization", f"{runtime.gpu_memory_utilization:g}",
        ]  # fmt: skip
        if runtime.tensor_parallel_size > 1:
            argv += ["--tensor-parallel-size", str(runtime.tensor_parallel_size)]
        if runtime.pipeline_parallel_size > 1:
            argv += ["--pipeline-parallel-size", str(runtime.pipeline_parallel_size)]
        if runtime.enable_expert_parallel:
            argv.append("--enable-expert-parallel")
        argv += self._scheduler_flags(runtime)
        if runtime.block_size is not None:
            argv += ["--block-size", str(runtime.block_size)]
        if runtime.enforce_eager:
            argv.append("--enforce-eager")
        if weights.trust_remote_code:
            argv.append("--trust-remote-code")
        notes = self._experts_override(runtime, argv, gguf_config=is_gguf and not weights.hf_config_path)
        notes += self._kv_cache_pin(runtime, argv)
        if runtime.nnodes > 1:
            argv += ["--nnodes", str(runtime.nnodes), "--distributed-executor-backend", "mp"]
            notes.append(
                f"Multi-node: run this on each of the {runtime.nnodes} nodes with --node-rank R and "
                "--master-addr <node 0 address>; add --headless on nodes R > 0 (vLLM's mp backend)."
            )
        argv += ["--host", runtime.host, "--port", str(runtime.port)]
        return EngineCommand(
            argv=tuple(argv),
            requirements=self._requirements(is_gguf, plugin),
            env=self._env(is_gguf, plugin),
            overrides=self.profile.install_overrides,
            notes=tuple(notes + self._install_notes() + self._gguf_notes(weights, runtime) + list(verdict.warnings)),
        )

    def _experts_override(self, runtime: RuntimeSpec, argv: list[str], *, gguf_config: bool) -> list[str]:
        """`--hf-overrides` setting the model's own experts-per-token key (nested where config.json nests it,
        e.g. '{"text_config": {"num_experts_per_tok": N}}' for Llama-4) appended to `argv`; its note."""
        n = runtime.experts_per_token
        if n is None:
            return []
        key = runtime.experts_per_token_key
        if key is None and gguf_config:
            # A GGUF without --hf-config-path: transformers builds the config from the header, mapping
            # <arch>.expert_used_count to the top-level key (transformers/integrations/ggml.py GGUF_CONFIG_MAPPING).
            key = "num_experts_per_tok"
        if key is None:
            raise InvalidRequestError(
                f"--experts-per-token {n}: the model's metadata does not say which config key holds its experts "
                "per token (config.json num_experts_per_tok, text_config.num_experts_per_tok, moe_k, moe_topk, "
                "ffn_config.moe_top_k), so vLLM's --hf-overrides cannot be aimed at the key its model reads. "
                "Plan a repo whose config.json records it, use --engine llamacpp, or drop --experts-per-token."
            )
        if "--hf-overrides" not in self.profile.flags:
            raise InvalidRequestError(
                f"--experts-per-token {n}: the vLLM {self.version} profile does not record --hf-overrides (read "
                "from its wheel), so the override cannot be planned. Use another --vllm-version or --engine llamacpp."
            )
        # A dict field parsed with json.loads (vllm/engine/arg_utils.py `_compute_kwargs`); ModelConfig sets
        # flat keys on the HF config and walks dict values into its sub-configs (config/model.py
        # _apply_dict_overrides -> _update_nested) before the model is built.
        override: dict[str, object] = {key.split(".")[-1]: n}
        for part in reversed(key.split(".")[:-1]):
            override = {part: override}
        argv += ["--hf-overrides", json.dumps(override)]
        return [
            f"--hf-overrides ({self.profile.flags['--hf-overrides']}) sets config.{key} = {n}: "
            f"each token is routed to {n} experts."
        ]

    def _kv_cache_pin(self, runtime: RuntimeSpec, argv: list[str]) -> list[str]:
        """`--kv-cache-memory-bytes N` appended to `argv` when the plan pins the KV cache; its note."""
        n = runtime.kv_cache_memory_bytes
        if n is None:
            return []
        if "--kv-cache-memory-bytes" not in self.profile.flags:
            raise InvalidRequestError(
                f"--pin-kv-cache: the vLLM {self.version} profile does not record --kv-cache-memory-bytes (read "
                "from its wheel), so the KV cache cannot be pinned. Use another --vllm-version or drop --pin-kv-cache."
            )
        argv += ["--kv-cache-memory-bytes", str(n)]
        # CacheConfig.kv_cache_memory_bytes: the worker returns it as the KV cache's size instead of profiling
        # what gpu_memory_utilization leaves (vllm/v1/worker/gpu_worker.py determine_available_memory).
        return [
            f"--kv-cache-memory-bytes ({self.profile.flags['--kv-cache-memory-bytes']}) pins the KV cache to "
            f"{n:,} bytes per GPU, the plan's estimate; vLLM then ignores --gpu-memory-utilization for the KV "
            "cache, so the GPU holds what was estimated and no more."
        ]

    def _check_plugin_limits(self, weights: WeightsSpec, runtime: RuntimeSpec, plugin: VllmQuantPlugin | None) -> None:
        """Refuse what the quantization plugin's loader refuses for this runtime (tensor parallelism)."""
        if plugin is not None and plugin.refuses_tensor_parallel and runtime.tensor_parallel_size > 1:
            reason = f"tensor parallelism {runtime.tensor_parallel_size}: {plugin.refuses_tensor_parallel}"
            raise EngineCannotLoadError(f"{self._who} cannot load {weights.repo_id!r}: {reason}", reasons=(reason,))

    def _install_notes(self) -> list[str]:
        if not self.profile.install_overrides:
            return []
        return [f"Install: {self.profile.install_overrides_reason}."]

    def _scheduler_flags(self, runtime: RuntimeSpec) -> list[str]:
        if runtime.enable_chunked_prefill is False:
            # Without chunked prefill a prompt must fit one batch: vLLM refuses max_num_batched_tokens
            # < max_model_len, and always < max_num_seqs (vllm/config/scheduler.py:259-278 in 0.23,
            # :317-336 in 0.33).
            tokens = max(runtime.max_num_batched_tokens or 0, runtime.max_model_len, runtime.max_num_seqs)
            return ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(tokens)]
        flags = ["--enable-chunked-prefill"] if runtime.enable_chunked_prefill else []
        if runtime.max_num_batched_tokens is not None:
            flags += ["--max-num-batched-tokens", str(runtime.max_num_batched_tokens)]
        return flags

    def _requirements(self, is_gguf: bool, plugin: VllmQuantPlugin | None) -> tuple[str, ...]:
        # vLLM and the torch/transformers/huggingface_hub its checks ran with (the profile's lock);
        # the probe's GGUF verdicts hold for the same transformers (tests/test_locks.py) and its gguf.
        reqs = [f"vllm=={self.version}", *self.profile.engine_pins]
        if plugin is not None:
            reqs.append(plugin.requirement)
        if is_gguf:
            reqs += [*self.profile.gguf_requirements, f"gguf=={self._probe['versions']['gguf']}"]
            if self.modelformats_plugin:
                proof = self._plugin_proof()
                pin = f"=={proof['modelformats_plugin_version']}" if proof else ""
                reqs.append(f"modelformats[vllm-plugin]{pin}")
        return tuple(reqs)

    def _env(self, is_gguf: bool, plugin: VllmQuantPlugin | None) -> dict[str, str]:
        names = [plugin.plugin_name] if plugin is not None else []
        if is_gguf and self.profile.gguf_requirements:
            names += [GGUF_PLUGIN_NAME, *([OUR_PLUGIN_NAME] if self.modelformats_plugin else [])]
        # When set, vLLM loads only the general plugins VLLM_PLUGINS names (vllm/plugins/__init__.py).
        return {"VLLM_PLUGINS": ",".join(names)} if names else {}

    def _gguf_notes(self, weights: WeightsSpec, runtime: RuntimeSpec) -> list[str]:
        if weights.container != "gguf-file":
            return []
        notes = []
        if self.profile.gguf_refuses_bf16_on_blackwell and runtime.dtype in ("auto", "bfloat16"):
            notes.append(
                "On Blackwell (compute capability >= 10.0) vLLM 0.23's GGUF path refuses bfloat16 "
                "(vllm/model_executor/layers/quantization/gguf.py:62-68): use --dtype half there."
            )
        if runtime.enable_expert_parallel:
            notes.append("Expert parallelism has no GGUF-specific handling in vLLM; it is untested with GGUF.")
        return notes
