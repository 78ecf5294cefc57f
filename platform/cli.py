"""`noisylab` command line: run one training run; list config fields and profiles; show a record.

Every mistake a user can make ends in one line on stderr and exit code 2 (`UserError`); nothing is
left half-written (records and configs are written atomically, checkpoints only advance).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from noisylab.consoles import UNLIMITED, OutputConsole
from noisylab.errors import Interrupted, UserError
from noisylab.retries import DEFAULT_MAX_FAILURES, check_max_failures

# Off a terminal (a pipe, a file) nothing is wrapped or cut: see noisylab/consoles.py.
out = OutputConsole()
err = OutputConsole(stderr=True)


class OneLineGroup(TyperGroup):
    """noisylab's commands. A usage mistake (an option's value of the wrong type, a missing option, an
    unknown command) is shown as every mistake is: one line `error: ...`, exit code 2, instead of click's
    usage, hint and error lines."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        if "terminal_width" not in kwargs and not sys.stdout.isatty():
            # Off a terminal `--help` is not wrapped either (click wraps at 80 columns there, and inside
            # a word at its hyphen: "cpu-" / "memorise"), so `noisylab run --help | grep` finds a whole
            # option; every subcommand's context inherits the width.
            kwargs["terminal_width"] = UNLIMITED
        with one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with one_line_usage_errors():  # a command's own options are parsed when the group invokes it
            return super().invoke(ctx)


def is_usage_error(error: BaseException) -> bool:
    """Click's UsageError, known by its class names: typer ships its own copy of click, whose classes are
    not the `click` package's. `noisylab` alone (NoArgsIsHelpError) keeps showing the help."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return "UsageError" in names and "NoArgsIsHelpError" not in names


@contextlib.contextmanager
def one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except Exception as e:
        if is_usage_error(e):
            # `show` is how click prints an exception it stops on (then it exits with the code, 2).
            e.show = lambda file=None, error=e: _show_usage_error(error)  # type: ignore[attr-defined]
        raise


def _show_usage_error(error: Any) -> None:
    ctx = getattr(error, "ctx", None)
    where = ctx.command_path if ctx is not None else "noisylab"
    message = error.format_message().rstrip(".")
    err.print(f"error: {message} (see `{where} --help`)", markup=False, highlight=False, soft_wrap=True)


# `report`/`plot --metric` (report.METRICS; spelled out here so `--help` imports no table code).
METRIC_HELP = "acc, f1 (last epoch), acc_last10, f1_last10 (mean of the last 10 epochs), acc_best, f1_best"

app = typer.Typer(
    cls=OneLineGroup,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    # On a terminal click wraps help at min(terminal, 80) columns and breaks words at hyphens ("cpu-" /
    # "memorise"); up to 120 columns keeps profile names whole on wide terminals. Off one: unwrapped.
    context_settings={"max_content_width": 120},
    help="noisylab: train image classifiers on noisy labels (the report's pipeline, its baselines) on Ray.",
)


def _print_version(asked: bool) -> None:
    if not asked:
        return
    from importlib.metadata import PackageNotFoundError, version

    from noisylab.results.records import git_revision

    try:
        number = version("noisylab")
    except PackageNotFoundError:  # run from a source tree that was never installed
        number = "unknown"
    typer.echo(f"noisylab {number} (git {git_revision()})")
    raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and git revision"
        ),
    ] = False,
) -> None:
    pass  # the group's own options; the help text is the app's


def fail(message: str, code: int = UserError.exit_code) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


def default_profile() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def _profiles_help() -> str:
    from noisylab.config.profiles import PROFILES

    return ", ".join(PROFILES) + "; default: gpu if CUDA is available, else cpu (`noisylab profiles`)"


# Each option of `run` and the config field it sets (with --config, only the options given explicitly).
_RUN_FIELDS = {
    "dataset": "data.dataset",
    "noise": "data.noise",
    "method": "method",
    "model": "model.name",
    "seed": "seed",
    "workers": "workers",
    "gpu": "use_gpu",
    "data_root": "data.root",
    "dataset_name": "data.name",
    "image_size": "data.image_size",
}


@app.command(
    epilog="Examples:\n\n"
    "  noisylab run --profile tiny --workers 0\n\n"
    "  noisylab run --profile cpu-small --method ce --seed 1 --set refine.threshold=0.5\n\n"
    "  noisylab run --dataset npz --data-root my.npz --dataset-name derma --image-size 32\n\n"
    "  noisylab run --config runs/RUN/config.json --seed 2   (repeat a run, vary one field)"
)
def run(
    click_ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(help="fashion-mnist, mnist, cifar10, cifar100, chest-xray, chaoyang, imagefolder, npz"),
    ] = "fashion-mnist",
    noise: Annotated[
        str | None,
        typer.Option(
            help="idn:τ | sym:r | pair:r | none | file:PATH[#key]; default idn:0.3, and none for your own "
            "npz or imagefolder data (its labels are taken as the noisy ones)",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="paper (the report's pipeline on one network), paper_dividemix (the pipeline on DivideMix, "
            "as the report's numbers were made), their variants (paper_focal, paper_swce_focal, paper_byol, "
            "paper_apl, ...: `noisylab methods`), or a baseline: ce, swce, focal, nce_mae, mixup, forward, "
            "coteaching, dividemix, c2d, mentornet, selfie"
        ),
    ] = "paper",
    model: Annotated[
        str, typer.Option(help="preact_resnet18, preact_resnet34, resnet18, resnet34, or a timm model name")
    ] = "preact_resnet18",
    profile: Annotated[str | None, typer.Option(help=_profiles_help())] = None,
    seed: Annotated[int, typer.Option(help="seeds the noise, the initial weights and the data order")] = 0,
    workers: Annotated[
        int,
        typer.Option(
            help="Ray Train workers (data-parallel, 2 or more); 1 trains in this process unless --address "
            "names a cluster, 0 always in this process"
        ),
    ] = 1,
    gpu: Annotated[bool, typer.Option("--gpu", help="one GPU per worker (NCCL); default CPU (gloo)")] = False,
    data_root: Annotated[
        Path | None, typer.Option(help="where the dataset lies (default: its usual place)")
    ] = None,
    dataset_name: Annotated[
        str | None,
        typer.Option(help="the dataset's name in reports (default: the .npz stem or folder name)"),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(help="resize images to this many pixels square (default: keep their native size)"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="a saved config.json (or run folder) to repeat, or a TOML/JSON file of overrides; "
            "options given on the command line and --set win over it",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="override any config field: --set refine.threshold=0.5 (see `noisylab fields`)"
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="run name (default: derived from the config)")] = None,
    storage: Annotated[Path, typer.Option(help="folder for runs: checkpoints and records")] = Path("runs"),
    address: Annotated[
        str | None,
        typer.Option(
            help="attach to a running Ray cluster (e.g. auto), or `local`: a Ray of this run's own, "
            "through Ray Train even for one worker"
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="progress bars")] = True,
    logger: Annotated[
        list[str] | None,
        typer.Option(help="also log every epoch to tensorboard or mlflow (local files); repeatable"),
    ] = None,
    max_failures: Annotated[
        int,
        typer.Option(
            help="Ray Train runs: restart from the newest checkpoint after this many lost workers or "
            "nodes (preempted instances) before giving up; a run in this process resumes with the same "
            "command instead"
        ),
    ] = DEFAULT_MAX_FAILURES,
    pretrain_cache: Annotated[
        bool,
        typer.Option(
            help="reuse an identical earlier SimCLR pre-training (same images, network, settings and seed; "
            "kept under $NOISYLAB_CACHE/pretrain), and keep this run's for others"
        ),
    ] = True,
) -> None:
    """Train one run to the end (or resume it) and write its result record."""
    from noisylab.config.files import read_overrides
    from noisylab.config.profiles import PROFILES, make_config, own_data_noise
    from noisylab.config.run import parse_assignment
    from noisylab.results.trackers import check_loggers
    from noisylab.runner import execute, needs_ray

    given = {
        "dataset": dataset,
        "noise": noise,
        "method": method,
        "model": model,
        "seed": seed,
        "workers": workers,
        "gpu": gpu,
        # absolute: the saved config then repeats the run from any folder
        "data_root": str(data_root.resolve()) if data_root is not None else None,
        "dataset_name": dataset_name,
        "image_size": image_size,
    }
    try:
        from_file = read_overrides(config) if config is not None else {}
        # By name: typer may ship its own copy of click's ParameterSource enum.
        explicit = {
            k for k in given if getattr(click_ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"
        }
        overrides: dict[str, Any] = {k: v for k, v in from_file.items() if k != "profile"}
        overrides |= {
            _RUN_FIELDS[k]: v
            for k, v in given.items()
            if (k in explicit or (config is None and v is not None))
        }
        overrides |= dict(parse_assignment(a) for a in set_ or [])
        chosen = profile or from_file.get("profile") or default_profile()
        cfg = make_config(chosen, overrides)
        loggers = check_loggers(logger or [])
        check_max_failures(max_failures)
        retries_given = getattr(click_ctx.get_parameter_source("max_failures"), "name", "") == "COMMANDLINE"
        if retries_given and not needs_ray(cfg, address):
            raise UserError(
                "--max-failures applies to Ray Train runs (--workers 2 or more, or --address); a run in "
                "this process resumes from its newest checkpoint when the same command is run again"
            )
        lines = [f"profile {chosen}: {PROFILES[chosen].description}"]
        if not needs_ray(cfg, address):
            lines.append(
                "trains in this process (--workers 2 or more, or --address, train through Ray Train)"
            )
        if own_data_noise(overrides):
            lines.append(
                f"noise none: the labels of your own {cfg.data.dataset} data are taken as the noisy ones "
                "(--noise idn:0.3, sym:0.2, ... adds synthetic noise to them)"
            )

        def announce(message: str) -> None:
            err.print("\n".join([message, *lines]), markup=False, highlight=False)

        outcome = execute(
            cfg,
            storage=storage,
            name=name,
            progress=progress and sys.stderr.isatty(),
            pretrain_cache=pretrain_cache,
            address=address,
            use_ray=needs_ray(cfg, address),
            on_start=announce,
            loggers=loggers,
            max_failures=max_failures,
        )
    except UserError as e:
        raise fail(str(e), e.exit_code) from None
    if outcome.already_done:
        err.print(
            f"run '{outcome.name}' had already finished; showing its record "
            "(pass another --name or --seed to train again)",
            markup=False,
            highlight=False,
        )
    print_summary(outcome.record, outcome.directory)


@app.command()
def sweep(
    click_ctx: typer.Context,
    study: Annotated[
        str, typer.Argument(help="a study name (`noisylab studies` lists them) or a .py file defining STUDY")
    ],
    profile: Annotated[
        str | None, typer.Option(help="gpu or cpu; default: gpu if CUDA is available, else cpu")
    ] = None,
    storage: Annotated[
        str, typer.Option(help="folder for studies (shared by all nodes): trials, records, Tune state")
    ] = "studies",
    resume: Annotated[
        bool, typer.Option("--resume", help="continue an interrupted sweep; finished trials are kept")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list the trials and check them; run nothing")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a config field in every trial: --set data.root=/data/cifar"),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="attach to a running Ray cluster (auto, or ray://host:10001)")
    ] = None,
    logger: Annotated[
        list[str] | None,
        typer.Option(help="log every trial's epochs to tensorboard or mlflow (local files); repeatable"),
    ] = None,
    autoscaling: Annotated[
        bool,
        typer.Option(
            "--autoscaling",
            help="the cluster adds GPU/CPU nodes on demand: don't refuse trials it can't place yet",
        ),
    ] = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="run the grid on this machine without Ray, one process per trial (fastest on a laptop)",
        ),
    ] = False,
    max_failures: Annotated[
        int,
        typer.Option(
            help="per trial: restart its Ray Train run from the newest checkpoint after this many lost "
            "workers or nodes (preempted instances) before the trial fails"
        ),
    ] = DEFAULT_MAX_FAILURES,
) -> None:
    """Run a whole study with Ray Tune: one Ray Train run per trial, every record in one store.

    Examples: noisylab sweep fmnist_cpu --profile cpu --dry-run ; noisylab sweep fmnist_cpu --profile cpu ;
    noisylab sweep my_study.py --set data.root=/data/fmnist --resume
    """
    from noisylab.config.run import parse_assignment
    from noisylab.sweeps import get_study

    try:
        chosen = profile or default_profile()
        spec = get_study(study)
        overrides = dict(parse_assignment(a) for a in set_ or [])
        check_max_failures(max_failures)
        if dry_run:
            print_plan(spec, chosen, overrides, data_here=not (address or "").startswith("ray://"))
            return
        if local:
            if getattr(click_ctx.get_parameter_source("max_failures"), "name", "") == "COMMANDLINE":
                raise UserError("--max-failures applies to Ray Train trials: drop it with --local")
            if address is not None or autoscaling:
                raise UserError("--local runs on this machine without Ray: drop --address/--autoscaling")
            if logger:  # the trackers are Ray Tune's callbacks, and --local has no Tune
                raise UserError("--logger needs Ray Tune: drop --local, or log each run with noisylab run")
            from noisylab.studies.local import run_sweep_local

            try:
                outcome = run_sweep_local(
                    spec,
                    profile=chosen,
                    storage=storage,
                    user_overrides=overrides,
                    resume=resume,
                    write=lambda line: err.print(line, markup=False, highlight=False),
                )
            except Interrupted as e:  # where it stopped, and the command that continues it
                again = ["sweep", study, "--profile", chosen, "--storage", storage, "--local", "--resume"]
                again += [part for assignment in set_ or [] for part in ("--set", assignment)]
                raise Interrupted(f"{e}; continue with: noisylab {shlex.join(again)}") from None
        else:
            from noisylab.results.trackers import check_loggers
            from noisylab.studies.tune import run_sweep

            outcome = run_sweep(
                spec,
                loggers=check_loggers(logger or []),
                profile=chosen,
                storage=storage,
                user_overrides=overrides,
                resume=resume,
                address=address,
                autoscaling=autoscaling,
                write=lambda line: err.print(line, markup=False, highlight=False),
                max_failures=max_failures,
            )
    except UserError as e:
        raise fail(str(e), e.exit_code) from None
    err.print(
        f"{outcome.finished} trials finished, {len(outcome.failed)} failed; "
        f"{len(outcome.records)} records in "
        f"{outcome.directory}\n`noisylab report {outcome.directory}` prints the tables",
        markup=False,
        highlight=False,
    )
    for line in outcome.failed:
        err.print(f"failed: {line}", markup=False, highlight=False)
    if outcome.failed:
        raise typer.Exit(code=1)


def print_plan(spec: Any, profile: str, overrides: dict[str, Any], *, data_here: bool = True) -> None:
    """The trials a sweep would run, after checking every one of them, and then their data's files."""
    from noisylab.config.diff import flatten, value_text
    from noisylab.config.profiles import PROFILES
    from noisylab.studies.tune import check_data, describe_domain, plan

    configs = plan(spec, profile, overrides)
    sweep_profile = spec.profile(profile)
    table = Table(title=f"{spec.name}: {spec.description}", title_justify="left")
    shown = ["method", "data.dataset", "data.noise", "model.name", "seed"]
    axes = shown + [a for a in spec.grid_points(profile)[0] if a not in shown] if configs else shown
    for col in ("#", *axes):
        table.add_column(col)
    for i, cfg in enumerate(configs, start=1):
        flat = flatten(cfg.to_dict())
        table.add_row(str(i), *(value_text(flat[a]) for a in axes))
    out.print(table)
    for path, domain in spec.search.items():
        out.print(f"  × {spec.num_samples} samples of {path}: {describe_domain(domain)}", highlight=False)
    out.print(
        f"{spec.num_trials(profile)} trials, profile '{profile}' (run profile {sweep_profile.run_profile}: "
        f"{PROFILES[sweep_profile.run_profile].description}); per trial {sweep_profile.workers_per_trial} "
        f"worker(s) × {sweep_profile.cpus_per_trial:g} CPU, {sweep_profile.gpus_per_trial:g} GPU; "
        f"{sweep_profile.max_concurrent_trials} at once; optimising {spec.metric} ({spec.mode})"
        + (f"; {spec.scheduler.upper()} early stopping" if spec.scheduler != "fifo" else ""),
        highlight=False,
    )
    if data_here:  # after the plan: the trials are listed, then what they could not read
        check_data(configs)


@app.command()
def studies() -> None:
    """List the studies `noisylab sweep` can run.

    Example: noisylab studies
    """
    from noisylab.sweeps import get_study, study_names

    table = Table()
    for col in ("study", "trials (cpu / gpu)", "what"):
        table.add_column(col)
    for name in study_names():
        s = get_study(name)
        counts = " / ".join(str(s.num_trials(p)) if p in s.profiles else "-" for p in ("cpu", "gpu"))
        table.add_row(name, counts, s.description)
    out.print(table)


# What `print_summary` reads besides the columns every reader needs (store.REQUIRED_COLUMNS); the store's
# optional columns, absent from older records, show as '-'.
_SUMMARY_COLUMNS = (
    "width",
    "num_train",
    "num_test",
    "num_classes",
    "realised_noise_rate",
    "workers",
    "warmup_test_acc",
    "warmup_test_f1",
    "git_rev",
    "iterations",
)


@app.command()
def show(
    run_dir: Annotated[
        Path, typer.Argument(help="a run folder (holding record.parquet) or the record itself")
    ],
) -> None:
    """Print the summary of a run: a finished one's record, or an unfinished one's progress so far.

    Example: noisylab show runs/paper-fashion-mnist-idn0.3-cpu-s0-1a2b3c
    """
    from noisylab.results.records import RECORD_FILE, read_record
    from noisylab.results.store import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

    path = run_dir / RECORD_FILE if run_dir.is_dir() else run_dir
    if not path.exists():
        if run_dir.is_dir() and (run_dir / "config.json").exists():
            print_progress(run_dir)
            return
        raise fail(f"no result record at {path} and no run started there (no config.json)")
    try:
        record = read_record(path)
    except Exception as e:  # a corrupt or foreign file: say so in one line
        raise fail(f"{path} is not a noisylab result record ({type(e).__name__}: {e})") from None
    missing = [c for c in (*REQUIRED_COLUMNS, *_SUMMARY_COLUMNS) if c not in record]
    if missing:  # `report` refuses the same file: a record is what every reader can read
        raise fail(
            f"{path} is not a noisylab result record (it lacks the record columns {', '.join(missing)}): "
            "point at the folder of a finished run"
        )
    print_summary(dict.fromkeys(OPTIONAL_COLUMNS) | record, path.parent)
    print_differences(json.loads(record.get("config_json") or "{}"))


def print_differences(config: dict[str, Any]) -> None:
    """The fields the run set apart from its method's defaults under its profile."""
    from noisylab.config.diff import differences, value_text

    if not config:
        return
    diff = differences(config)
    table = Table(
        "field",
        "value",
        title=f"settings that differ from {config.get('method')}'s defaults "
        f"under profile {config.get('profile')}",
        title_justify="left",
    )
    for k, v in diff.items():
        table.add_row(k, value_text(v))
    if diff:
        out.print(table)
    else:
        out.print("settings: the method's defaults under its profile", highlight=False)


def print_progress(run_dir: Path) -> None:
    """An unfinished (or crashed) run: its config and the epochs logged in metrics.jsonl so far."""
    from noisylab.config.run import load_config_json
    from noisylab.results.live import METRICS_FILE, describe, read_metrics

    try:
        cfg = load_config_json(run_dir / "config.json")
    except UserError as e:
        raise fail(str(e)) from None
    steps = read_metrics(run_dir / METRICS_FILE)
    out.print(
        f"run {run_dir.name}: not finished (no record yet); {cfg.method} on {cfg.data.dataset}, noise "
        f"{cfg.data.noise}, profile {cfg.profile}, seed {cfg.seed}; {len(steps)} epochs logged",
        highlight=False,
    )
    table = Table("step", "phase", "iteration", "epoch", "figures", title="progress", title_justify="left")
    for row in steps:
        table.add_row(
            str(row["step"] + 1),
            str(row.get("phase")),
            str(row.get("iteration")),
            str(row.get("epoch")),
            describe({k: (float("nan") if v is None else v) for k, v in row.items()}),
        )
    if steps:
        out.print(table)
    print_differences(cfg.to_dict())
    out.print(f"live: tail -f {run_dir / METRICS_FILE}", markup=False, highlight=False)


@app.command()
def report(
    locations: Annotated[
        list[str] | None,
        typer.Argument(help="run folders, study folders or stores (paths, or s3://, gs://, file:// URIs)"),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(help="keep this study's records; its planned grid fills the cells nothing ran for"),
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="the study profile whose grid is planned (gpu or cpu)")
    ] = None,
    vs_paper: Annotated[
        bool, typer.Option("--vs-paper", help="published numbers beside the measured ones, and their gap")
    ] = False,
    published: Annotated[
        Path | None,
        typer.Option(help="a CSV of more published numbers (the columns of noisylab's published.csv)"),
    ] = None,
    table: Annotated[str, typer.Option(help="pivot, cells, best, diagnostics, time or all")] = "pivot",
    metric: Annotated[str, typer.Option(help=METRIC_HELP)] = "acc",
    format_: Annotated[
        str, typer.Option("--format", help="table (terminal), csv, parquet, markdown or latex")
    ] = "table",
    output: Annotated[Path | None, typer.Option(help="write to this file instead of the terminal")] = None,
) -> None:
    """Summarise result records in tables: the paper's pivot, the best configuration, diagnostics, time.

    Runs whose configs differ in more than the seed are separate rows, labelled by what differs.

    Examples: noisylab report runs ; noisylab report --study paper_table2 --vs-paper ;
    noisylab report studies/fmnist_cpu --table all --format latex --output t.tex
    """
    from noisylab.results.published import load_published
    from noisylab.results.report import report_tables
    from noisylab.results.store import filter_study, read_records
    from noisylab.results.tables import FORMATS, print_tables, render_text, write_tables
    from noisylab.sweeps import get_study

    try:
        if format_ not in FORMATS:
            raise UserError(f"unknown format '{format_}': choose one of {', '.join(FORMATS)}")
        if format_ == "parquet" and output is None:
            raise UserError("--format parquet needs --output FILE")
        if not locations and study is None:
            raise UserError(
                "nothing to report: pass run folders, study folders or a store, "
                "or --study NAME for its planned grid"
            )
        spec = get_study(study) if study is not None else None
        records = None
        if locations:
            records = read_records(locations, warn=lambda line: typer.echo(f"warning: {line}", err=True))
            if spec is not None:
                records = filter_study(records, spec.name)
                if records.height == 0:
                    err.print(
                        f"no records of study '{spec.name}' in {', '.join(locations)}: "
                        "showing its planned grid",
                        markup=False,
                        highlight=False,
                        soft_wrap=True,
                    )
        tables = report_tables(
            records,
            table=table,
            metric=metric,
            study=spec,
            profile=profile,
            published=load_published(published) if vs_paper or published is not None else None,
        )
        if output is not None:
            for path in write_tables(tables, format_, output):
                typer.echo(f"wrote {path}", err=True)
        elif format_ == "table":
            print_tables(tables, out)
        else:
            typer.echo(render_text(tables, format_), nl=False)
        if format_ in ("csv", "parquet"):  # data files hold no prose: their notes go to the terminal
            for note in (note for t in tables for note in t.notes):
                typer.echo(f"note: {note}", err=True)
    except UserError as e:
        raise fail(str(e), e.exit_code) from None


@app.command()
def plot(
    locations: Annotated[
        list[str], typer.Argument(help="run folders, study folders or stores (paths, or s3://, gs:// URIs)")
    ],
    out_dir: Annotated[
        Path,
        typer.Option("--output", "--out", "-o", help="folder for the figures (created if needed)"),
    ],
    study: Annotated[str | None, typer.Option(help="keep only this study's records")] = None,
    method: Annotated[
        list[str] | None, typer.Option(help="keep only this method's records; repeatable")
    ] = None,
    metric: Annotated[str, typer.Option(help=METRIC_HELP)] = "acc",
    format_: Annotated[str, typer.Option("--format", help="png, pdf or svg")] = "png",
) -> None:
    """Figures: accuracy against noise rate per method; selection precision per stage (pipeline runs);
    training loss and test accuracy per epoch.

    Example: noisylab plot runs --output figures --format pdf ; noisylab plot studies/S --method ce -o f
    """
    import polars as pl

    from noisylab.results.plots import plot_records
    from noisylab.results.store import filter_study, read_records

    try:
        records = read_records(locations, warn=lambda line: typer.echo(f"warning: {line}", err=True))
        if study is not None:
            records = filter_study(records, study)
            if records.height == 0:
                raise UserError(f"no records of study '{study}' in {', '.join(locations)}")
        if method:
            records = records.filter(pl.col("method").is_in(method))
            if records.height == 0:
                raise UserError(f"no records of method {', '.join(method)} in {', '.join(locations)}")
        written = plot_records(records, out_dir, metric=metric, fmt=format_)
    except UserError as e:
        raise fail(str(e), e.exit_code) from None
    for path in written:
        typer.echo(str(path))


@app.command(
    epilog="Examples:\n\n"
    "  noisylab labels runs/RUN --output suspects.parquet   (writes suspects.parquet and "
    "suspects.pred_probs.npy)\n\n"
    "  noisylab labels runs/RUN --output pred_probs.npy   (writes pred_probs.npy alone; cleanlab: "
    "find_label_issues(labels, pred_probs))\n\n"
    "  noisylab labels runs/RUN --folds 5 --output oof.parquet   (trains 5 fold runs of RUN's config beside "
    "it; out-of-fold pred_probs, label issues ranked)"
)
def labels(
    click_ctx: typer.Context,
    run_dir: Annotated[
        Path,
        typer.Argument(help="a finished run folder (holding samples.parquet); with --folds, any run folder"),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="F.parquet or F.csv: writes F and F's stem + .pred_probs.npy beside it (the N×K array); "
            "F.npy: writes F alone (pred_probs only)",
        ),
    ],
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="replace those files if they exist (without it they are kept)"),
    ] = False,
    folds: Annotated[
        int | None,
        typer.Option(
            help="out-of-fold pred_probs (cleanlab's workflow): train K fold runs of RUN's config, each on "
            "K-1 folds stratified by the given label, and flag label issues with confident learning"
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(help="with --folds: fold runs at once (default: as many as the CPUs hold, at most K)"),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="with --folds: Ray Train workers per fold run; 0 trains each fold in one process "
            "(a local process, or a Ray task with --address)"
        ),
    ] = 0,
    address: Annotated[
        str | None,
        typer.Option(help="with --folds: run the fold runs as tasks of this Ray cluster (e.g. auto)"),
    ] = None,
    storage: Annotated[
        Path | None,
        typer.Option(help="with --folds: folder of the fold runs (default: RUN's, beside it)"),
    ] = None,
    ranking: Annotated[
        str,
        typer.Option(
            help="with --folds: who flags label issues: auto (cleanlab if installed, else builtin), "
            "cleanlab, builtin (noisylab's confident learning)"
        ),
    ] = "auto",
) -> None:
    """Export one row per training sample: index, file (image folders), given label and its class name,
    final label, when it was relabelled or selected, its last selection score, and the final class
    probabilities (cleanlab's pred_probs). With --folds K: out-of-fold pred_probs from K fold runs and
    each label's issue rank instead. Existing files are never replaced without --overwrite."""
    from noisylab.train.samples import export_samples, read_samples

    try:
        if folds is None:
            given = [
                f"--{k}"
                for k in ("jobs", "workers", "address", "storage", "ranking")
                if getattr(click_ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"
            ]
            if given:
                raise UserError(f"{', '.join(given)} only apply with --folds K (out-of-fold pred_probs)")
            written = export_samples(read_samples(run_dir), output, overwrite=overwrite)
        else:
            written = export_out_of_fold(
                run_dir,
                output,
                overwrite=overwrite,
                folds=folds,
                jobs=jobs,
                workers=workers,
                address=address,
                storage=storage,
                ranking=ranking,
            )
    except UserError as e:
        raise fail(str(e), e.exit_code) from None
    for path in written:
        typer.echo(f"wrote {path}", err=True)


def export_out_of_fold(
    run_dir: Path,
    output: Path,
    *,
    overwrite: bool,
    folds: int,
    jobs: int | None,
    workers: int,
    address: str | None,
    storage: Path | None,
    ranking: str,
) -> list[Path]:
    """`labels --folds`: every check first (the output, the ranking, the K fold configs and their
    folders), then the fold runs, then the out-of-fold table with its label issues."""
    import numpy as np

    from noisylab.config.run import load_config_json
    from noisylab.results.issues import check_ranking, find_issues, score_flags, with_issues
    from noisylab.runner import CONFIG_FILE
    from noisylab.studies.oof import out_of_fold_table, plan_folds, run_folds
    from noisylab.train.samples import check_export, export_samples

    def say(line: str) -> None:
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    check_export(output, overwrite=overwrite)
    chosen = check_ranking(ranking)
    if not (run_dir / CONFIG_FILE).is_file():
        raise UserError(
            f"{run_dir} holds no {CONFIG_FILE}: point --folds at a run folder (`noisylab run` makes one)"
        )
    cfg = load_config_json(run_dir / CONFIG_FILE)
    runs = plan_folds(cfg, folds, workers=workers, storage=storage or run_dir.resolve().parent)
    outcome = run_folds(runs, jobs=jobs, address=address, write=say)
    table = out_of_fold_table(runs)
    given = table["given_label"].to_numpy()
    issues = find_issues(given, np.asarray(table["pred_probs"].to_numpy()), ranking=chosen)
    table = with_issues(table, issues)
    written = export_samples(table, output, overwrite=overwrite)
    say(
        f"out-of-fold pred_probs of {table.height:,} samples from {folds} fold runs "
        f"({outcome.trained} trained in {outcome.seconds:.0f} s, {outcome.reused} finished before); "
        f"{int(issues.flagged.sum()):,} label issues flagged by {issues.by}"
    )
    score = score_flags(issues.flagged, given, table["clean_label"].to_numpy())
    if score.wrong:  # synthetic noise: the clean labels are known
        say(
            f"against the clean labels: precision {100 * score.precision:.1f} %, recall "
            f"{100 * score.recall:.1f} % ({score.wrong:,} of {table.height:,} given labels are wrong)"
        )
    return written


FIELD_FORMATS = ("table", "csv", "json")


@app.command()
def fields(
    format_: Annotated[
        str, typer.Option("--format", help="table (terminal), csv or json: one row per field, whole text")
    ] = "table",
) -> None:
    """List every config field that --set (and sweeps, and --config files) can change: its type, its
    default before a profile, and what it means (from the comments of noisylab/config.py and of the
    section modules, noisylab/sections/).

    Examples: noisylab fields ; noisylab fields | grep lr ; noisylab fields --format csv > fields.csv ;
    noisylab run --set refine.threshold=0.5
    """
    from noisylab.config.fielddocs import describe_fields
    from noisylab.config.run import RunConfig, type_name

    if format_ not in FIELD_FORMATS:
        raise fail(f"unknown format '{format_}': choose one of {', '.join(FIELD_FORMATS)}")
    defaults = _flatten(RunConfig().to_dict())
    # A terminal gets the first 160 characters of long comments; a pipe, a file, CSV and JSON the whole.
    whole = format_ != "table" or not out.is_terminal
    rows = [
        {"field": path, "type": type_name(tp), "default": json.dumps(defaults[path]), "what": text}
        for path, (tp, text) in describe_fields(limit=None if whole else 160).items()
    ]
    if format_ == "json":
        typer.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    if format_ == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(buffer.getvalue(), nl=False)
        return
    table = Table("field", "type", "default", "what", title="config fields (defaults before a profile)")
    for row in rows:
        table.add_row(*row.values())
    out.print(table, markup=False, highlight=False)


@app.command()
def methods() -> None:
    """List the training methods: the report's pipeline, its variants and the baselines."""
    import inspect

    from noisylab.config.variants import VARIANTS
    from noisylab.trainables import METHODS, method_networks

    table = Table("method", "networks", "what", title="methods")
    for name in METHODS:
        if name in VARIANTS:
            v = VARIANTS[name]
            what = f"{v.base} with {', '.join(f'{k}={x}' for k, x in v.overrides.items())}: {v.description}"
        elif own := getattr(METHODS[name](), "description", ""):
            what = own  # one module defining several methods (robust_losses) describes each apart
        else:
            doc = inspect.getdoc(inspect.getmodule(METHODS[name])) or ""  # the module that defines it
            what = doc.split("\n\n")[0].replace("\n", " ")
        table.add_row(name, str(method_networks(name)), what)
    out.print(table)


@app.command()
def profiles() -> None:
    """List the run profiles and what each changes.

    Example: noisylab profiles
    """
    from noisylab.config.profiles import PROFILES

    table = Table("profile", "description", "overrides", title="profiles")
    for p in PROFILES.values():
        table.add_row(p.name, p.description, "\n".join(f"{k}={v}" for k, v in p.overrides.items()) or "-")
    out.print(table)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat |= _flatten(v, f"{prefix}{k}.")
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def wall_time(record: dict[str, Any]) -> str:
    """'1382 s', and for a run that was resumed 'over 3 attempts (600 + 526 + 256 s)': the total counts
    every attempt (each up to its last checkpoint; the last one to its end) and any pre-training reused
    from the cache with the seconds it took when it ran."""
    total = record.get("wall_seconds")
    if total is None:
        return "-"
    attempts = record.get("attempt_seconds") or []
    if len(attempts) < 2:
        return f"{total:.0f} s"
    parts = " + ".join(f"{s:.0f}" for s in attempts)
    reused = total - sum(attempts)
    extra = f", and {reused:.0f} s of reused pre-training" if reused >= 0.5 else ""
    return f"{total:.0f} s over {len(attempts)} attempts ({parts} s{extra})"


def print_summary(record: dict[str, Any], directory: Path) -> None:
    r = record
    head = Table(show_header=False, title=f"run {r['run_name']}", title_justify="left")
    head.add_row("method / model", f"{r['method']} / {r['model']} (width {r['width']})")
    head.add_row(
        "data", f"{r['dataset']}: {r['num_train']} train, {r['num_test']} test, {r['num_classes']} classes"
    )
    head.add_row("noise", f"{r['noise']} (realised {_pct(r['realised_noise_rate'])} %)")
    head.add_row("profile / seed / workers", f"{r['profile']} / {r['seed']} / {r['workers']}")
    head.add_row("test accuracy %", _pct(r["test_acc"]))
    head.add_row("test macro-F1 %", _pct(r["test_f1"]))
    if r["warmup_test_acc"] is not None:
        head.add_row(
            "after warm-up: acc / F1 %", f"{_pct(r['warmup_test_acc'])} / {_pct(r['warmup_test_f1'])}"
        )
    head.add_row("wall time", f"{wall_time(r)}  (git {r['git_rev']})")
    out.print(head)
    if r["iterations"]:
        it = Table(
            "iteration",
            "consensus",
            "its labels right %",
            "recall %",
            "relabelled",
            "label acc %",
            title="refinement (against the clean labels)",
            title_justify="left",
        )
        start = r["realised_noise_rate"]
        it.add_row("start", "", "", "", "", _pct(None if start is None else 1 - start))
        for row in r["iterations"]:
            it.add_row(
                str(row["iteration"]),
                f"{row['consensus_size']:.0f}",
                _pct(row["consensus_label_precision"]),
                _pct(row["consensus_recall"]),
                f"{row['relabelled']:.0f}",
                _pct(row["label_acc"]),
            )
        out.print(it)
    # soft_wrap: one line that the terminal may fold, never a path cut in two by rich
    out.print(f"record: {directory / 'record.parquet'}", markup=False, highlight=False, soft_wrap=True)


def main() -> None:  # pragma: no cover - console-script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
