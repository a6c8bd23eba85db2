"""`localtune runs`: list run directories with status and final losses."""

from __future__ import annotations

from localtune.runs.layout import DEFAULT_ROOT


def register(sub) -> None:
    p = sub.add_parser("runs", help="list training runs")
    p.add_argument("--root", default=str(DEFAULT_ROOT), help=f"where run directories live (default: {DEFAULT_ROOT})")
    p.set_defaults(func=run)


def run(args) -> int:
    from localtune.runs import list_runs

    runs = list_runs(args.root)
    if not runs:
        print(f"no runs under {args.root}/")
        return 0
    # Answers judged during training (--eval-file), when any run has them; the best step (--keep-best).
    extra = [(k, label) for k, label in (("final_eval_ended", "ended"), ("final_eval_loops", "loops"),
                                         ("final_eval_checks_passed", "checks"), ("best_step", "best"))
             if any(isinstance(r.get(k), (int, float)) for r in runs)]
    fmt = lambda x: f"{x:.3f}" if isinstance(x, float) else (str(x) if isinstance(x, int) else "-")  # noqa: E731
    from localtune.safetext import printable

    def own(r: dict) -> str:
        """The final values of the metrics the run's mode declared (GRPO's reward, ...); the answers'
        numbers (eval_*) have their columns above, or `localtune eval`'s table."""
        keys = [(m.get("label"), "final_" + str(m.get("key"))) for m in r.get("metrics") or ()
                if isinstance(m, dict) and m.get("final") and not str(m.get("key")).startswith("eval_")]
        return "  ".join(f"{printable(str(label), one_line=True)} {fmt(r[k])}" for label, k in keys if k in r)

    results = [own(r) for r in runs]
    print(f"{'run':<32} {'kind':<5} {'status':<12} {'step':>6} {'train':>7} {'val':>7}"
          + "".join(f" {label:>7}" for _, label in extra) + ("  results" if any(results) else ""))
    for r, result in zip(runs, results):
        name, kind, status = (printable(str(r.get(k, "?")), one_line=True) for k in ("name", "kind", "status"))
        print((f"{name:<32} {kind:<5} {status:<12} {r.get('step', '-')!s:>6} "
               f"{fmt(r['final_train_loss']):>7} {fmt(r['final_val_loss']):>7}"
               + "".join(f" {fmt(r.get(k)):>7}" for k, _ in extra) + f"  {result}").rstrip())
    return 0
