"""Figures in one house style (seaborn ``ticks`` theme, ``colorblind`` palette, PNG output)."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib import animation
from matplotlib.colors import LogNorm

WEIGHT_TITLES = {"W0": r"$J_1 W_0$ (maintain)", "WL": r"$W_L$ (turn left)",
                 "WR": r"$W_R$ (turn right)"}


def set_style() -> None:
    """Apply the house style to every later figure."""
    sns.set_theme(context="notebook", style="ticks", palette="colorblind",
                  rc={"figure.dpi": 100, "savefig.dpi": 100, "axes.titlesize": "medium"})


def _deg(x) -> np.ndarray:
    return np.degrees(np.asarray(x))


def _draw_weights(axes, weights, vmax=None):
    images = []
    for ax, (name, title) in zip(axes, WEIGHT_TITLES.items()):
        w = np.asarray(weights[name])
        lim = vmax if vmax is not None else np.abs(w).max()
        images.append(ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest"))
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    return images


def plot_weight_matrices(start: dict, end: dict, labels=("start", "end")):
    """Two rows of the three weight matrices (post-synaptic neuron = row)."""
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.2), constrained_layout=True)
    for row, weights, label in zip(axes, (start, end), labels):
        images = _draw_weights(row, weights)
        row[0].set_ylabel(label)
        for ax, im in zip(row, images):
            fig.colorbar(im, ax=ax, shrink=0.75)
    return fig


def weight_evolution_animation(snapshots, path, fps: int = 5, dpi: int = 60) -> dict[str, Path]:
    """Animate ``[(iteration, weights), ...]`` as a GIF (Pillow), and an MP4 when ffmpeg exists.

    Colour limits are fixed by the final snapshot so that growth is visible. Frames share one
    undithered 64-colour palette, which keeps the GIF small enough to embed in a page. Returns
    the paths written, keyed by format.
    """
    from PIL import Image

    path = Path(path).with_suffix(".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    final = snapshots[-1][1]
    limits = {k: float(np.abs(np.asarray(v)).max()) or 1.0 for k, v in final.items()}
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4), dpi=dpi, constrained_layout=True)
    images = []
    for ax, (name, title) in zip(axes, WEIGHT_TITLES.items()):
        images.append(ax.imshow(np.asarray(snapshots[0][1][name]), cmap="RdBu_r",
                                vmin=-limits[name], vmax=limits[name], interpolation="nearest"))
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    caption = fig.suptitle("")

    def draw(frame):
        iteration, weights = snapshots[frame]
        for im, name in zip(images, WEIGHT_TITLES):
            im.set_data(np.asarray(weights[name]))
        caption.set_text(f"iteration {iteration}")
        return images

    frames = []
    for i in range(len(snapshots)):
        draw(i)
        fig.canvas.draw()
        frames.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]))
    palette = frames[-1].quantize(colors=64, dither=Image.Dither.NONE)
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], optimize=True,
                   duration=int(1000 / fps), loop=0)
    written = {"gif": path}
    if shutil.which("ffmpeg"):
        written["mp4"] = path.with_suffix(".mp4")
        anim = animation.FuncAnimation(fig, draw, frames=len(snapshots), blit=False)
        anim.save(written["mp4"], writer=animation.FFMpegWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return written


def plot_training_history(history, smooth: int = 25):
    """Loss, training error, and learning rate with the gradient norm, against iteration, with
    the curriculum switches dotted."""
    fig, (ax_loss, ax_err, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.4),
                                                 constrained_layout=True)
    it = np.arange(1, len(history.loss) + 1)
    kernel = np.ones(smooth) / smooth
    seq = np.asarray(history.seq_len)
    for ax, values, label in ((ax_loss, history.loss, "loss"), (ax_err, history.error_deg,
                                                                 "training error (deg)")):
        ax.plot(it, values, alpha=0.3, lw=0.8)
        if len(values) > smooth:
            ax.plot(it[smooth - 1:], np.convolve(values, kernel, mode="valid"), lw=1.5)
        ax.set_yscale("log")
        ax.set_ylabel(label)
    ax_lr.plot(it, history.learning_rate, color="C2")
    ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate", color="C2")
    ax_norm = ax_lr.twinx()
    ax_norm.plot(it, history.grad_norm, color="C3", alpha=0.4, lw=0.6)
    ax_norm.set_yscale("log")
    ax_norm.set_ylabel("gradient norm before clipping", color="C3")
    for ax in (ax_loss, ax_err, ax_lr):
        ax.set_xlabel("iteration")
        for change in np.flatnonzero(np.diff(seq)) + 1:
            ax.axvline(change, color="0.6", ls=":", lw=1)
    ax_loss.set_title("heading loss + amplitude term")
    ax_err.set_title("heading error on the training batch")
    ax_lr.set_title("learning rate and gradient norm")
    return fig


def plot_integration_run(av, angles, decoded, activity, sample: int = 0, title: str = ""):
    """Activity heatmap, bump profiles, input velocity and true vs decoded heading."""
    av, angles, decoded = (np.asarray(x[sample]) for x in (av, angles, decoded))
    act = np.asarray(activity[sample])
    steps, n = act.shape
    fig = plt.figure(figsize=(11, 6.5), constrained_layout=True)
    grid = fig.add_gridspec(3, 2, width_ratios=(2.3, 1))
    ax_heat = fig.add_subplot(grid[0, 0])
    ax_av = fig.add_subplot(grid[1, 0], sharex=ax_heat)
    ax_head = fig.add_subplot(grid[2, 0], sharex=ax_heat)
    ax_prof = fig.add_subplot(grid[:, 1])
    im = ax_heat.imshow(act.T, aspect="auto", origin="lower", cmap="viridis",
                        extent=(0, steps, 0, 360), interpolation="nearest")
    fig.colorbar(im, ax=ax_heat, label="rate", pad=0.01)
    ax_heat.set_ylabel("preferred\ndirection (deg)")
    ax_heat.set_title(title or "network activity")
    ax_av.plot(np.arange(1, steps + 1), _deg(av), color="C2")
    ax_av.set_ylabel("AV (deg/step)")
    ax_head.plot(np.arange(1, steps + 1), _deg(angles) % 360, ".", ms=2, label="true")
    ax_head.plot(np.arange(1, steps + 1), _deg(decoded) % 360, ".", ms=2, label="decoded")
    ax_head.set_ylabel("heading (deg)")
    ax_head.set_xlabel("time step")
    ax_head.set_ylim(0, 360)
    ax_head.legend(loc="upper right", markerscale=4, frameon=False, ncol=2)
    preferred = 360 * np.arange(n) / n
    times = np.linspace(0, steps - 1, 5).astype(int)
    palette = sns.color_palette("rocket", len(times))
    for colour, t in zip(palette, times):
        ax_prof.plot(preferred, act[t], color=colour, label=f"t = {t + 1}")
    ax_prof.set_xlabel("preferred direction (deg)")
    ax_prof.set_ylabel("rate")
    ax_prof.set_title("bump profiles")
    ax_prof.legend(frameon=False, fontsize="small", loc="upper center",
                   bbox_to_anchor=(0.5, -0.12), ncol=3)
    return fig


def plot_velocity_gain(curves: dict, max_av: float):
    """Bump speed against input speed for each network in ``curves`` (``name -> (av, speed)``)."""
    fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    lim = math.degrees(max_av) * 1.25
    ax.plot([-lim, lim], [-lim, lim], color="0.5", ls="--", lw=1, label="ideal (gain 1)")
    for name, (av, speed) in curves.items():
        ax.plot(_deg(av), _deg(speed), "o-", ms=3, label=name)
    ax.axvspan(-math.degrees(max_av), math.degrees(max_av), color="0.92", zorder=0)
    ax.set_xlabel("input angular velocity (deg/step)")
    ax.set_ylabel("bump speed (deg/step)")
    ax.legend(frameon=False)
    return fig


def plot_final_profiles(profiles: dict):
    """Rate against preferred direction, one panel per network: ``profiles[name]`` is an array
    ``(k, N)`` of final activity patterns on the ring grid."""
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.5 * len(profiles), 3), sharey=True,
                             constrained_layout=True, squeeze=False)
    for ax, (name, rates) in zip(axes[0], profiles.items()):
        rates = np.asarray(rates)
        preferred = 360.0 * np.arange(rates.shape[-1]) / rates.shape[-1]
        ax.plot(preferred, rates.T)
        ax.set_title(f"{name}: last step of {rates.shape[0]} sequences")
        ax.set_xlabel("preferred direction (deg)")
    axes[0, 0].set_ylabel("rate")
    return fig


def plot_error_bars(errors: dict, title: str = ""):
    """Grouped bars: ``errors[condition][network] = degrees``."""
    import pandas as pd

    rows = [{"condition": c, "network": k, "error": v}
            for c, by_net in errors.items() for k, v in by_net.items()]
    fig, ax = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    sns.barplot(pd.DataFrame(rows), x="condition", y="error", hue="network", ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel("mean abs. error (deg)")
    ax.set_xlabel("")
    ax.set_title(title)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.1f", fontsize="x-small")
    return fig


def plot_trainer_history(trainer, max_params: int = 8):
    """Train/validation loss, learning rate, gradient norm and scalar-parameter evolution of an
    :class:`hdlib.fitters.training.AdamCosineTrainer`."""
    history = trainer.history
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), constrained_layout=True)
    ax = axes[0, 0]
    ax.plot(epochs, history["train_loss"], label="train")
    ax.plot(epochs, history["val_loss"], label="validation")
    ax.set_yscale("log")
    ax.set_title("loss")
    ax.legend(frameon=False)
    axes[0, 1].plot(epochs, history["learning_rate"])
    axes[0, 1].set_title("learning rate (base group)")
    axes[1, 0].plot(epochs, history["grad_norm"])
    axes[1, 0].set_yscale("log")
    axes[1, 0].set_title("gradient norm before clipping")
    ax = axes[1, 1]
    for name, values in list(trainer.param_history.items())[:max_params]:
        start = values[0] if values[0] else 1.0
        ax.plot(np.arange(len(values)), np.asarray(values) / start, label=name)
    ax.set_title("parameters relative to their start")
    ax.legend(frameon=False, fontsize="x-small", ncol=2)
    for ax in axes.flat:
        ax.set_xlabel("epoch")
    return fig


def plot_excitation_spectrum(spectrum, n_kept: int, sigma_ee: float):
    """``|eigenvalue|`` of ``g_EE W_EE`` against frequency (log scale), with the last frequency
    whose modes the E/I ring keeps (``n_kept`` modes: one cosine and one sine per frequency)."""
    fig, ax = plt.subplots(figsize=(6, 3), constrained_layout=True)
    ax.semilogy(np.abs(np.asarray(spectrum)).clip(min=1e-12), ".", ms=3)
    ax.axvline((n_kept - 1) / 2, color="grey", ls="--", label="last frequency kept")
    ax.set(xlabel="frequency k (cycles per ring)", ylabel="|eigenvalue| of $g_{EE} W_{EE}$",
           title=f"E->E spectrum, sigma_ee = {sigma_ee:g} rad")
    ax.legend(frameon=False)
    return fig


def plot_darkness(results: dict, cue_steps: int):
    """Decoded heading (degrees) of every cue heading, one panel per network; ``results`` maps a
    label to the output of :func:`hdlib.models.ei_ring.darkness_test`. Darkness is shaded."""
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.2), sharey=True,
                             constrained_layout=True, squeeze=False)
    for ax, (name, result) in zip(axes[0], results.items()):
        trace = _deg(result["decoded"].cpu()) % 360
        ax.plot(np.arange(trace.shape[1]), trace.T, lw=0.8)
        ax.axvspan(cue_steps, trace.shape[1], color="0.9", zorder=0)
        ax.set(title=f"{name} (grey: darkness)", xlabel="time (ms)")
    axes[0, 0].set_ylabel("decoded heading (deg)")
    return fig


def plot_bump_counts(counts, sigmas, inhibitions):
    """Heat map of the mean bump count for every ``sigma_ee`` (rows) and ``g_ie`` (columns)."""
    import pandas as pd

    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    table = pd.DataFrame(np.asarray(counts), index=[f"{s:g}" for s in sigmas],
                         columns=[f"{g:g}" for g in inhibitions])
    sns.heatmap(table, annot=True, fmt=".2g", cmap="mako", ax=ax,
                cbar_kws={"label": "mean bump count"})
    ax.set(xlabel="inhibition gain g_IE", ylabel="sigma_EE (rad)")
    return fig


def plot_recipe_curves(trainers: dict):
    """Validation loss, learning rate, gradient norm and ``g_EE`` per epoch for every recipe:
    ``trainers[recipe]`` is the list of its :class:`hdlib.fitters.training.AdamCosineTrainer`
    runs (one per seed); thin lines are single runs, thick lines their mean over the epochs all
    runs reached."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    colours = sns.color_palette(n_colors=len(trainers))
    for colour, (name, runs) in zip(colours, trainers.items()):
        for key, ax in (("val_loss", axes[0, 0]), ("learning_rate", axes[0, 1]),
                        ("grad_norm", axes[1, 0])):
            curves = [run.history[key] for run in runs]
            for curve in curves:
                ax.plot(np.arange(1, len(curve) + 1), curve, color=colour, lw=0.6, alpha=0.5)
            length = min(len(curve) for curve in curves)
            mean = np.mean([curve[:length] for curve in curves], axis=0)
            ax.plot(np.arange(1, length + 1), mean, color=colour, lw=2, label=name)
        for run in runs:
            axes[1, 1].plot(run.param_history["g_ee"], color=colour, lw=1)
    titles = ("validation loss", "learning rate", "gradient norm",
              "g_EE (recurrent excitation gain)")
    for ax, title in zip(axes.flat, titles):
        ax.set(title=title, xlabel="epoch")
    axes[0, 0].set_yscale("log")
    axes[1, 0].set_yscale("log")
    axes[0, 1].legend(frameon=False, fontsize="small")
    return fig

def plot_free_viewing(video, trial: int = 0, n_frames_shown: int = 4):
    """A few frames of one trial, its gaze trace and saccade gate."""
    fig = plt.figure(figsize=(10, 4.8))
    grid = fig.add_gridspec(2, n_frames_shown, height_ratios=[1, 1.1])
    T = video.frames.shape[1]
    times = np.arange(T) / video.fps
    for i, t in enumerate(np.linspace(0, T - 1, n_frames_shown).astype(int)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(video.frames[trial, t].numpy(), cmap="gray")
        ax.set_title(f"t = {times[t] * 1000:.0f} ms")
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    gaze = video.gaze[trial].numpy()
    ax.plot(times, gaze[:, 0], label="gaze x")
    ax.plot(times, gaze[:, 1], label="gaze y")
    ax.set(xlabel="time (s)", ylabel="gaze (deg)")
    twin = ax.twinx()
    twin.fill_between(times, video.gate[trial].numpy(), color="0.5", alpha=0.3, step="mid",
                      label="saccade gate q")
    twin.set(ylim=(0, 3), yticks=[0, 1], ylabel="q")
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    twin.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig


def plot_stage_responses(t_ms, relaxation: dict, kernels: dict):
    """Two panels: step responses of the amplitude relaxation and the weights of the moving
    averages (``{label: curve}`` each), against time in ms."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, curves in zip(axes, (relaxation, kernels)):
        for label, curve in curves.items():
            ax.plot(t_ms, np.asarray(curve), label=label)
        ax.legend(fontsize="small")
    axes[0].set(title="relaxation: step response", xlabel="time (ms)", ylabel="A")
    axes[1].set(title="moving averages: weight of a past frame", xlabel="lag (ms)",
                ylabel="weight")
    fig.tight_layout()
    return fig


def plot_teacher_spikes(rates, counts, gate, fps: float, trial: int = 0, n_rates: int = 3,
                        n_raster: int = 12):
    """Rates of a few neurons and a spike raster of one trial (``(trials, T, neurons)``
    tensors), with the frames whose saccade gate exceeds 0.5 shaded."""
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True)
    t_s = np.arange(rates.shape[1]) / fps
    for n in range(n_rates):
        axes[0].plot(t_s, np.asarray(rates[trial, :, n]), lw=1, label=f"neuron {n}")
    neuron, frame = np.nonzero(np.asarray(counts[trial, :, :n_raster]).T)
    axes[1].scatter(t_s[frame], neuron, s=4, marker="|", color="k")
    for ax in axes:
        ax.fill_between(t_s, 0, 1, where=np.asarray(gate[trial]) > 0.5, color="0.8",
                        transform=ax.get_xaxis_transform(), step="mid")
    axes[0].set(ylabel="rate (spikes/s)", title="teacher rates; saccades shaded")
    axes[0].legend(fontsize="x-small", ncol=n_rates)
    axes[1].set(ylabel="neuron", xlabel="time (s)", title="Poisson spikes")
    fig.tight_layout()
    return fig


def plot_constant_trajectories(histories: dict, truth: dict,
                               names=("lambda_fix", "lambda_sac", "alpha_fast", "alpha_slow")):
    """Each constant against training step for every run, with the true value dashed."""
    fig, axes = plt.subplots(1, len(names), figsize=(3.1 * len(names), 3.2), sharex=True)
    for ax, name in zip(axes, names):
        for label, history in histories.items():
            ax.plot(history[name], label=label, lw=1.2)
        ax.axhline(truth[name], color="k", ls="--", lw=1, label="teacher")
        ax.set(title=name, xlabel="step")
    axes[0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_constant_runs(runs: dict, truth: dict, every: int = 1,
                       names=("lambda_fix", "lambda_sac", "alpha_fast", "alpha_slow")):
    """Each constant against training step, one colour per start and one thin line per seed:
    ``runs = {label: [{name: values recorded every ``every`` steps}, ...]}``; truth dashed."""
    fig, axes = plt.subplots(1, len(names), figsize=(3.1 * len(names), 3.2), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes, names):
        for (label, seeds), colour in zip(runs.items(), colours):
            for i, history in enumerate(seeds):
                values = np.asarray(history[name])
                ax.plot(np.arange(len(values)) * every, values, color=colour, lw=1, alpha=0.8,
                        label=label if i == 0 else None)
        ax.axhline(truth[name], color="k", ls="--", lw=1, label="teacher")
        ax.set(title=name, xlabel="step")
    axes[0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_endpoint_errors(errors: dict, names=("lambda_fix", "lambda_sac", "alpha_fast",
                                              "alpha_slow"), tolerance: float | None = None):
    """Signed relative error of each constant at the end of each fit, one point per seed:
    ``errors = {label: {name: [per-seed errors]}}``; the tolerance band shaded."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / max(len(errors), 1)
    for j, (label, values) in enumerate(errors.items()):
        for i, name in enumerate(names):
            y = np.asarray(values.get(name, []), dtype=float)
            x = np.full(y.shape, i - 0.4 + width * (j + 0.5))
            ax.scatter(x, y, s=18, color=f"C{j}", label=label if i == 0 else None)
            if y.size:
                ax.hlines(y.mean(), x[0] - width / 3, x[0] + width / 3, color=f"C{j}")
    if tolerance is not None:
        ax.axhspan(-tolerance, tolerance, color="0.9", zorder=0, label="tolerance")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="(learned - true) / true")
    ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    return fig


def plot_loss_slice(lambda_fix, lambda_sac, delta, truth: dict, endpoints: dict | None = None):
    """Left: the loss ``delta`` (nats above its value at the truth, ``(len(lambda_fix),
    len(lambda_sac))``) over the grid on log axes, truth and fit ``endpoints = {label: (fix,
    sac)}`` marked. Right: the cuts through the truth along each rate, against rate / truth."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    f, s, d = (np.asarray(v, dtype=float) for v in (lambda_fix, lambda_sac, delta))
    levels = [1, 3, 10, 30, 100, 300, 1000, 3000]
    shown = axes[0].contourf(s, f, np.clip(d, 0.3, None), levels=[0.3] + levels,
                             norm=LogNorm(), cmap="viridis")
    fig.colorbar(shown, ax=axes[0], label="loss above truth (nats)")
    axes[0].plot(truth["lambda_sac"], truth["lambda_fix"], "k*", ms=10, label="teacher")
    for label, (fix, sac) in (endpoints or {}).items():
        axes[0].plot(sac, fix, "o", mfc="none", label=label)
    axes[0].set(xscale="log", yscale="log", xlabel=r"$\lambda_{sac}$ (1/s)",
                ylabel=r"$\lambda_{fix}$ (1/s)", title="2-D slice (other constants at truth)")
    axes[0].set_xticks(s[::2], [f"{v:.3g}" for v in s[::2]])
    axes[0].set_yticks(f[::2], [f"{v:.3g}" for v in f[::2]])
    axes[0].minorticks_off()
    axes[0].legend(fontsize="x-small")
    i = int(np.argmin(np.abs(f - truth["lambda_fix"])))
    j = int(np.argmin(np.abs(s - truth["lambda_sac"])))
    axes[1].plot(f / truth["lambda_fix"], d[:, j], "o-", label=r"along $\lambda_{fix}$")
    axes[1].plot(s / truth["lambda_sac"], d[i, :], "s-", label=r"along $\lambda_{sac}$")
    axes[1].set_yscale("symlog", linthresh=1.0)
    axes[1].set(xscale="log", ylim=(0, None), xlabel="rate / true rate",
                ylabel="loss above truth (nats)", title="cuts through the truth")
    ratios = f[::2] / truth["lambda_fix"]
    axes[1].set_xticks(ratios, [f"{v:.2g}" for v in ratios])
    axes[1].minorticks_off()
    axes[1].legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_seed_curves(curves: dict, block: int, switches=(), ylabel: str = "training error (deg)"):
    """One column per configuration: ``curves[config] = (values per seed, learning rates per
    seed)``, each a list of block-averaged curves (``block`` iterations per point); one line per
    seed on top, the learning rate below, ``switches`` (iterations) dotted."""
    fig, axes = plt.subplots(2, len(curves), figsize=(3.4 * len(curves), 4.6), sharex=True,
                             sharey="row", squeeze=False, constrained_layout=True,
                             gridspec_kw={"height_ratios": [3, 1]})
    for column, (name, (values, rates)) in enumerate(curves.items()):
        top, bottom = axes[0, column], axes[1, column]
        for seed, (curve, rate) in enumerate(zip(values, rates)):
            x = block * (np.arange(len(curve)) + 0.5)
            top.plot(x, curve, lw=1.0, label=f"seed {seed}")
            bottom.plot(x, rate, lw=1.0)
        for ax in (top, bottom):
            for switch in switches:
                ax.axvline(switch, color="0.5", ls=":", lw=1)
        top.set_yscale("log")
        bottom.set_yscale("log")
        top.set_title(name)
        bottom.set_xlabel("iteration")
    axes[0, 0].set_ylabel(ylabel)
    axes[1, 0].set_ylabel("learning rate")
    axes[0, 0].legend(frameon=False, fontsize="small")
    return fig


def plot_stored_val_curves(records: list, recipes, groups: dict):
    """Validation loss against training sequences seen, one panel per group of recipes
    (``groups[title] = [recipe, ...]``): thin lines are seeds (``records``, one stored record per
    seed with ``recipe/val_loss``, ``recipe/steps_per_epoch`` and ``recipe/batch_size``), thick
    lines their mean."""
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.8), sharey=True,
                             squeeze=False, constrained_layout=True)
    colours = dict(zip(recipes, sns.color_palette(n_colors=len(recipes))))
    for ax, (title, names) in zip(axes[0], groups.items()):
        for name in names:
            curves = np.array([record[f"{name}/val_loss"] for record in records], dtype=float)
            per_epoch = records[0][f"{name}/steps_per_epoch"] * records[0][f"{name}/batch_size"]
            x = per_epoch * np.arange(1, curves.shape[1] + 1)
            for curve in curves:
                ax.plot(x, curve, color=colours[name], lw=0.6, alpha=0.5)
            ax.plot(x, curves.mean(axis=0), color=colours[name], lw=2, label=name)
        ax.set(title=title, xlabel="training sequences seen", yscale="log")
        ax.legend(frameon=False, fontsize="small")
    axes[0, 0].set_ylabel("validation loss")
    return fig
