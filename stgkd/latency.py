"""Inference latency of a forecaster, measured honestly.

:func:`measure` times ``model(x)`` for inputs ``x`` of shape ``(B, T_in, N, C)`` and returns a
:class:`LatencyResult` that carries the numbers *and* the conditions they were taken under (device,
versions, shape, mode, precision). Printing is the CLI's job (``stgkd latency``). :func:`measure_train_step`
times a training step's forward and backward.

How it times:

* **CUDA**: the device is synchronised before every call, then a pair of CUDA events brackets the call
  and the elapsed time is read after one final synchronisation. A call therefore starts on an idle GPU
  and its time includes kernel-launch overhead, i.e. the latency of one request, not pipelined
  throughput. Inputs already live on the GPU; host-device copies are not timed.
* **CUDA graph** (``mode="cuda-graph"``): the whole forward is captured once at the fixed shape into a
  ``torch.cuda.CUDAGraph`` reading a static input buffer (after a warm-up on a side stream, as the
  PyTorch docs prescribe); each timed call copies the next input into the static buffer and replays.
  A capture that fails raises :class:`CaptureError` and is remembered for the rest of the process
  (:func:`failed_capture`): a failed capture can leave PyTorch's caching allocator believing a capture is
  under way, so no further capture is attempted in that process and :func:`release_cached_memory`
  leaves the allocator alone. Code that must go on capturing other models probes each capture in a
  child process first (``benchmarks.capture``).
* **torch.compile** (``mode="compile"``): ``torch.compile(model)``; compilation happens during warm-up
  and is not timed.
* **CPU**: ``time.perf_counter`` around each call. CPU results say ``device_kind="cpu"`` and name the
  CPU model. Asking for ``device="cuda"`` without a GPU raises :class:`~stgkd.errors.ConfigError`,
  unless ``fallback_to_cpu=True`` (then the result is labelled CPU and records the request).

Low precision (``dtype="bf16"`` / ``"fp16"``) runs as :func:`stgkd.precision.inference_precision`
decides, and the result says how (``precision``): under ``torch.autocast`` (``"autocast"``: the weights
stay float32, matmuls and convolutions run in the low precision, normalisations and reductions that
autocast keeps in float32 stay there), or, for a model with recurrent layers, cast whole to the low
precision (``"cast"``: cuDNN's RNN under CUDA autocast runs fp16 whatever precision is asked). Every
call does the same work in every mode: eager calls each enter autocast anew without its weight cache,
as a request does, and a CUDA graph captured under it replays the same casts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from stgkd.errors import ConfigError
from stgkd.precision import DTYPES, inference_precision

MODES = ("eager", "cuda-graph", "compile")

__all__ = [
    "MODES", "DTYPES", "LatencyResult", "measure", "measure_train_step", "summarize", "device_name",
    "CudaGraphRunner", "CaptureError", "failed_capture", "release_cached_memory", "random_graph", "format_table",
    "RawUnitsAdapter", "cpu_threads", "load_average", "is_busy", "busy_cores", "is_crowded"
]


@dataclass
class LatencyResult:
    """Latency of one (model, shape, mode, precision, device) setting, in milliseconds per call.

    ``throughput`` is forecasts per second at the median latency (``batch / median``), one forecast
    being one window of all ``nodes`` sensors. ``precision`` is how ``dtype`` ran: ``"fp32"``,
    ``"autocast"`` or ``"cast"`` (:func:`stgkd.precision.inference_precision`). ``load_average`` is the 1/5/15-minute load average when
    timing ended and ``cpu_count`` the machine's cores; ``busy`` says the 1-minute figure, before or after
    timing, exceeded one runnable process per core (:func:`is_busy`): other work shared the cores, and
    the numbers measure it too.
    """

    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    throughput: float
    device_kind: str
    device_name: str
    torch_version: str
    cuda_version: str | None
    batch: int
    nodes: int
    steps: int
    channels: int
    mode: str
    dtype: str
    warmup: int
    iters: int
    requested_device: str = ""
    precision: str = ""
    model: str = ""
    parameters: int = 0
    load_average: list[float] | None = None
    cpu_count: int = 0
    busy: bool = False
    date: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """Summary statistics of latency samples (ms).

    Percentiles use linear interpolation between order statistics (numpy's default, "type 7"): the
    q-th percentile of sorted ``s`` (length ``n``) is ``s[k] + (s[k+1] - s[k]) * f`` with
    ``k + f = q / 100 * (n - 1)``. ``std`` is the sample standard deviation (``n - 1``; 0 for one sample).
    """
    if len(samples_ms) == 0:
        raise ConfigError("summarize: no latency samples")
    s = np.asarray(samples_ms, dtype=np.float64)
    if not np.isfinite(s).all():
        raise ConfigError("summarize: latency samples hold NaN or Inf")
    return {
        "median_ms": float(np.percentile(s, 50)),
        "p90_ms": float(np.percentile(s, 90)),
        "p99_ms": float(np.percentile(s, 99)),
        "mean_ms": float(s.mean()),
        "std_ms": float(statistics.stdev(s.tolist())) if len(s) > 1 else 0.0,
        "min_ms": float(s.min()),
        "max_ms": float(s.max()),
    }


def device_name(device: torch.device | str) -> str:
    """The GPU's name for a CUDA device, the CPU model (plus core count) otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name} ({torch.get_num_threads()} threads)"


def _resolve_device(device: str | torch.device, fallback_to_cpu: bool) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        if fallback_to_cpu:
            return torch.device("cpu")
        raise ConfigError(
            f"device={str(device)!r}: CUDA is not available on this machine (torch {torch.__version__}); "
            "pass device='cpu', or fallback_to_cpu=True to time on the CPU (the result is then labelled cpu)"
        )
    if dev.type not in ("cuda", "cpu"):
        raise ConfigError(f"device={str(device)!r}: only 'cuda' and 'cpu' are supported")
    return dev


class CaptureError(RuntimeError):
    """A forward could not be captured into a CUDA graph (or may not be: an earlier capture in this
    process failed, :func:`failed_capture`)."""


#: the first capture that failed in this process, ``"<model>: <error>"`` (``None``: none failed)
_FAILED_CAPTURE: list[str] = []


def failed_capture() -> str | None:
    """The first CUDA-graph capture that failed in this process (``None`` when none did). After one, the
    caching allocator may still believe a capture is under way: :class:`CudaGraphRunner` refuses to
    capture again and :func:`release_cached_memory` does nothing."""
    return _FAILED_CAPTURE[0] if _FAILED_CAPTURE else None


def release_cached_memory() -> bool:
    """Return the CUDA caching allocator's unused blocks to the device (``torch.cuda.empty_cache``), unless
    a capture failed in this process (the allocator may be mid-capture, and emptying it then trips an
    internal assert) or CUDA is not initialised. Never raises; ``True`` when the cache was emptied."""
    if failed_capture() is not None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return False
    try:
        torch.cuda.empty_cache()
    except Exception:  # a broken allocator must not turn a recorded failure into a lost run
        return False
    return True


class CudaGraphRunner:
    """A forward captured into a CUDA graph at one fixed input shape.

    ``runner(x)`` copies ``x`` into the static input buffer, replays the graph and returns the static
    output buffer (overwritten by the next call: clone it to keep it). Not thread-safe on its own; the
    caller serialises replays (see :class:`stgkd.forecaster.Forecaster`).

    Args:
        fn: the function to capture, called as ``fn(*static_inputs)``; it must not synchronise with
            the host or allocate shapes that depend on data.
        example_inputs: CUDA tensors fixing the shapes and dtypes of the static buffers.
        warmup: eager calls on a side stream before capture (lets lazy initialisation and cuDNN
            autotuning happen outside the graph).
        context: optional context-manager factory entered around the warm-up calls and the capture
            (e.g. autocast, created with ``cache_enabled=False`` as capture requires).
        name: what is captured, for the error message.

    Raises:
        CaptureError: the capture failed (the failure is remembered, :func:`failed_capture`), or an
            earlier capture in this process failed.
    """

    def __init__(
        self,
        fn: Callable[..., Tensor],
        example_inputs: Sequence[Tensor],
        *,
        warmup: int = 3,
        context: Callable[[], Any] | None = None,
        name: str = "",
    ) -> None:
        if not all(t.is_cuda for t in example_inputs):
            raise ConfigError("CudaGraphRunner: every example input must be a CUDA tensor")
        if failed_capture() is not None:
            raise CaptureError(f"{name or 'forward'}: not captured: an earlier CUDA-graph capture in this process "
                               f"failed ({failed_capture()}), and the allocator may still be mid-capture")
        ctx = context or contextlib.nullcontext
        self.static_inputs = [t.detach().clone() for t in example_inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode(), ctx():
            for _ in range(max(1, warmup)):
                fn(*self.static_inputs)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: CUDA work other threads of the process do meanwhile does not spoil the capture
            with torch.inference_mode(), torch.cuda.graph(self.graph, capture_error_mode="thread_local"), ctx():
                self.static_output = fn(*self.static_inputs)
            torch.cuda.synchronize()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
            if not _FAILED_CAPTURE:
                _FAILED_CAPTURE.append(f"{name or 'forward'}: {reason}")
            raise CaptureError(f"{name or 'forward'}: the CUDA-graph capture failed ({reason})") from exc

    def __call__(self, *inputs: Tensor) -> Tensor:
        for buf, x in zip(self.static_inputs, inputs):
            buf.copy_(x, non_blocking=True)
        self.graph.replay()
        return self.static_output


def _model_dims(model: nn.Module, num_nodes, in_steps, in_channels) -> tuple[int, int, int]:
    dims = []
    for arg, attr in ((num_nodes, "num_nodes"), (in_steps, "in_steps"), (in_channels, "in_channels")):
        value = arg if arg is not None else getattr(model, attr, None)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"measure: {attr}= is needed (the model has no integer attribute {attr!r}), got {value!r}"
            )
        dims.append(int(value))
    return dims[0], dims[1], dims[2]


def measure(
    model: nn.Module,
    *,
    batch_size: int,
    num_nodes: int | None = None,
    in_steps: int | None = None,
    in_channels: int | None = None,
    device: str | torch.device = "cuda",
    mode: str = "eager",
    dtype: str = "fp32",
    warmup: int = 10,
    iters: int = 100,
    fallback_to_cpu: bool = False,
    seed: int = 0,
    name: str = "",
) -> LatencyResult:
    """Time ``model(x)`` for ``x`` of shape ``(batch_size, in_steps, num_nodes, in_channels)``.

    Shapes:
        input: ``(B, T_in, N, C)`` standard-normal values (the scaled input a trained model sees);
        the model's output shape is not constrained.

    Args:
        model: any module taking one ``(B, T_in, N, C)`` tensor; it is moved to ``device`` and put in
            eval mode.
        batch_size: ``B`` (windows per call).
        num_nodes, in_steps, in_channels: default to the model's attributes of those names
            (every :class:`~stgkd.nn.ForecastModel` has them).
        device: ``"cuda"`` (default) or ``"cpu"``. See ``fallback_to_cpu``.
        mode: ``"eager"``, ``"cuda-graph"`` (CUDA only) or ``"compile"`` (``torch.compile``).
        dtype: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast, or a cast copy of a model with recurrent
            layers; see the module docstring).
        warmup: untimed calls first (at least 1; more for ``compile``).
        iters: timed calls (at least 1); each call gets a fresh random input of the same shape,
            generated on the device before timing.
        fallback_to_cpu: when CUDA was asked for but is missing, time on the CPU instead of raising.
        seed: seed of the random inputs.
        name: label stored in the result (e.g. ``"gru-h32"``).
    """
    _check_settings(mode=mode, dtype=dtype, batch_size=batch_size, warmup=warmup, iters=iters)
    requested = str(device)
    dev = _measure_device(device, fallback_to_cpu, mode)
    n, t, c = _model_dims(model, num_nodes, in_steps, in_channels)
    model = model.to(dev).eval()
    params = sum(p.numel() for p in model.parameters())
    label = name or getattr(model, "registry_name", "") or type(model).__name__
    precision = inference_precision(model, dtype)
    run = precision.prepare(model)
    inputs = [precision.inputs(x) for x in
              _random_inputs((batch_size, t, n, c), count=min(iters, 8), seed=seed, device=dev)]
    fn: Callable[[Tensor], Tensor] = torch.compile(run) if mode == "compile" else run
    load_before = load_average()
    samples = _timed_calls(fn, inputs, dev, mode=mode, context=lambda: precision.context(dev), warmup=warmup,
                           iters=iters, name=label)
    stats = summarize(samples)
    load_after = load_average()
    return LatencyResult(
        **stats,
        throughput=batch_size / (stats["median_ms"] / 1e3) if stats["median_ms"] > 0 else float("inf"),
        device_kind=dev.type,
        device_name=device_name(dev),
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        batch=batch_size,
        nodes=n,
        steps=t,
        channels=c,
        mode=mode,
        dtype=dtype,
        warmup=warmup,
        iters=iters,
        requested_device=requested,
        precision=precision.method,
        model=label,
        parameters=int(params),
        load_average=load_after,
        cpu_count=os.cpu_count() or 1,
        busy=is_busy(load_before) or is_busy(load_after),
    )


def measure_train_step(model: nn.Module, x: Tensor, *, dtype: str = "fp32", warmup: int = 5,
                       iters: int = 20) -> dict[str, float]:
    """Milliseconds of a training step's forward and backward of ``model`` on ``x`` (train mode, the forecast's
    mean as the loss, gradients cleared after each; no optimiser step), summarised (:func:`summarize`) over
    ``iters`` steps after ``warmup`` untimed ones, at ``dtype`` as :func:`~stgkd.precision.inference_precision` runs it, on
    ``x``'s device: CUDA events from an idle GPU there, the wall clock on the CPU.

    Shapes:
        x: ``(B, T_in, N, C)``, on the model's device.
    """
    if dtype not in DTYPES or warmup < 0 or iters < 1:
        raise ConfigError(f"dtype={dtype!r} (one of {', '.join(DTYPES)}), warmup={warmup} (>= 0), iters={iters} (>= 1)")
    precision = inference_precision(model, dtype)
    run, xin, dev = precision.prepare(model).train(), precision.inputs(x), x.device

    def step(_: Any = None) -> None:
        with precision.context(dev):
            loss = run(xin).float().mean()
        loss.backward()
        run.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        return summarize(_time_cuda(step, [xin], iters, dev))
    return summarize(_time_cpu(step, [xin], iters))


def _check_settings(*, mode: str, dtype: str, batch_size: int, warmup: int, iters: int) -> None:
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}: choose one of {', '.join(MODES)}")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r}: choose one of {', '.join(DTYPES)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r}: must be a positive integer")
    if warmup < 1 or iters < 1:
        raise ConfigError(f"warmup={warmup} and iters={iters} must both be at least 1")


def _measure_device(device: str | torch.device, fallback_to_cpu: bool, mode: str) -> torch.device:
    """The device to time on; ``cuda-graph`` needs CUDA."""
    requested = str(device)
    dev = _resolve_device(device, fallback_to_cpu)
    if mode == "cuda-graph" and dev.type != "cuda":
        raise ConfigError(
            f"mode='cuda-graph' needs device='cuda' (got device={requested!r}"
            + (", CUDA unavailable, fell back to cpu" if requested != str(dev) else "")
            + "); use mode='eager' or mode='compile' on the CPU"
        )
    return dev


def _random_inputs(shape: tuple[int, ...], *, count: int, seed: int, device: torch.device) -> list[Tensor]:
    """``count`` standard-normal inputs of ``shape`` on ``device``, made before timing and cycled, so
    nothing is allocated inside the timed region."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return [torch.randn(*shape, generator=gen).to(device) for _ in range(count)]


def _timed_calls(fn: Callable[[Tensor], Any], inputs: list[Tensor], dev: torch.device, *, mode: str,
                 context: Callable[[], Any], warmup: int, iters: int, name: str = "") -> list[float]:
    """Milliseconds of each of ``iters`` calls after ``warmup`` untimed ones: replays of a CUDA graph captured
    under ``context()`` (``cuda-graph``), else eager calls each entering ``context()`` anew (the same work
    per call: a precision context without a weight cache), timed by CUDA events on CUDA, the wall clock on
    the CPU."""
    pool = len(inputs)
    with torch.inference_mode():
        if mode == "cuda-graph":
            runner = CudaGraphRunner(fn, [inputs[0]], warmup=warmup, context=context, name=name)
            for i in range(warmup):
                runner(inputs[i % pool])
            torch.cuda.synchronize(dev)
            return _time_cuda(lambda x: runner(x), inputs, iters, dev)

        def call(x: Tensor) -> Any:
            with context():
                return fn(x)

        for i in range(warmup):
            call(inputs[i % pool])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            return _time_cuda(call, inputs, iters, dev)
        return _time_cpu(call, inputs, iters)


def _time_cpu(fn: Callable[[Tensor], Any], inputs: list[Tensor], iters: int) -> list[float]:
    """Per-call wall-clock times in milliseconds, the inputs taken in turn."""
    samples: list[float] = []
    for i in range(iters):
        x = inputs[i % len(inputs)]
        start = time.perf_counter()
        fn(x)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def _time_cuda(fn: Callable[[Tensor], Any], inputs: list[Tensor], iters: int, dev: torch.device) -> list[float]:
    """Per-call CUDA-event times; the GPU is idle when each call starts."""
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for i in range(iters):
        torch.cuda.synchronize(dev)
        starts[i].record()
        fn(inputs[i % len(inputs)])
        ends[i].record()
    torch.cuda.synchronize(dev)
    return [s.elapsed_time(e) for s, e in zip(starts, ends)]


class RawUnitsAdapter(nn.Module):
    """Lets :func:`measure` time an exported program end to end (raw readings and timestamps in, raw
    forecasts out, as :class:`stgkd.Forecaster` calls it): channel 0 of the ``(B, T, N, C)`` input,
    made positive, as raw readings, and a fixed run of timestamps ``interval`` apart.

    Args:
        program: a callable ``(values (B, T, N), timestamps (B, T)) -> (B, H, N)``: a TorchScript or
            torch.export program, or :class:`stgkd.export.OnnxProgram`.
        in_steps, interval_minutes: the program's input steps and data interval.
    """

    def __init__(self, program: Any, in_steps: int, interval_minutes: int) -> None:
        super().__init__()
        self.module = program
        self.register_buffer("stamps", 1_700_000_000 + torch.arange(in_steps, dtype=torch.int64) * interval_minutes * 60)

    def train(self, mode: bool = True) -> "RawUnitsAdapter":
        """Sets this adapter's flag only: the program's mode was fixed when it was exported (the module of a
        torch.export file refuses ``train()`` and ``eval()``)."""
        self.training = mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Shapes: x ``(B, T, N, C)`` -> forecast ``(B, H, N)`` in raw units."""
        values = x[..., 0].abs() + 1.0
        return self.module(values, self.stamps.unsqueeze(0).expand(x.shape[0], -1))


@contextlib.contextmanager
def cpu_threads(threads: int | None):
    """Run the block with ``torch.set_num_threads(threads)`` (``None``: unchanged), then restore."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages (``os.getloadavg``), ``None`` where the OS has none. A CPU
    timing taken while the 1-minute figure exceeds ``os.cpu_count()`` shared the cores with other work."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def is_busy(load: Sequence[float] | None, cores: int | None = None) -> bool:
    """Whether a load average (:func:`load_average`) shows more than one runnable process per core: its
    1-minute figure exceeds ``cores`` (default ``os.cpu_count()``). ``False`` where no load is known."""
    return bool(load) and float(load[0]) > (cores or os.cpu_count() or 1)


def _cpu_times(path: str = "/proc/stat") -> tuple[int, int, int]:
    """``(all ticks, idle ticks, CPUs)`` from ``path``'s aggregate ``cpu`` line (user nice system idle
    iowait irq softirq steal; guest time is inside user) and its per-CPU lines."""
    with open(path) as f:
        lines = f.read().splitlines()
    ticks = [int(v) for v in lines[0].split()[1:9]]
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return sum(ticks), ticks[3] + ticks[4], cpus


def busy_cores(seconds: float = 0.5, *, path: str = "/proc/stat") -> float | None:
    """How many cores the machine's processes keep busy over the next ``seconds`` (``/proc/stat``). A
    caller that sleeps meanwhile measures the work of others, also right after its own training (which
    the 1-minute load average still carries for a minute). ``None`` where ``path`` is unreadable or
    counts other CPUs than ``os.cpu_count()`` (a container shown its host's)."""
    try:
        total0, idle0, cpus = _cpu_times(path)
        time.sleep(seconds)
        total1, idle1, _ = _cpu_times(path)
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0 or cpus != (os.cpu_count() or 0):
        return None
    return round((1.0 - (idle1 - idle0) / (total1 - total0)) * cpus, 2)


def is_crowded(others: float | None, threads: int, cores: int | None = None) -> bool | None:
    """Whether the cores that other work keeps busy (:func:`busy_cores`) leave fewer than ``threads``
    free: the rule of :func:`is_busy` (one runnable process per core) with the timing's own threads in
    place of a load average. ``None`` when ``others`` is unknown."""
    if others is None:
        return None
    return float(others) + max(1, int(threads)) > (cores or os.cpu_count() or 1)


def random_graph(num_nodes: int, *, degree: int = 8, seed: int = 0) -> np.ndarray:
    """A seeded random directed graph for timing: each node links to ``degree`` others with weights in
    ``(0.1, 1]`` plus a self-loop, as a dense ``(N, N)`` float32 adjacency (sparsity like a road sensor
    network's thresholded Gaussian-kernel graph)."""
    rng = np.random.default_rng(seed)
    adj = np.zeros((num_nodes, num_nodes), dtype=np.float32)
    k = min(degree, num_nodes - 1)
    for i in range(num_nodes):
        if k > 0:
            others = rng.choice(num_nodes - 1, size=k, replace=False)
            others = others + (others >= i)
            adj[i, others] = rng.uniform(0.1, 1.0, size=k)
        adj[i, i] = 1.0
    return adj


def format_table(results: Sequence[LatencyResult]) -> str:
    """A plain-text table of results (one row each)."""
    header = ("model", "device", "mode", "dtype", "batch", "nodes", "median ms", "p90 ms", "p99 ms", "forecasts/s")
    rows = [
        (
            r.model,
            r.device_kind,
            r.mode,
            r.dtype,
            str(r.batch),
            str(r.nodes),
            f"{r.median_ms:.3f}",
            f"{r.p90_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{r.throughput:,.0f}" if r.throughput >= 100 else f"{r.throughput:.3g}",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)
