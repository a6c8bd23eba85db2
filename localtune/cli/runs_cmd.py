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
    print(f"{'run':<32} {'kind':<5} {'status':<12} {'step':>6} {'train':>7} {'val':>7}  results")
    fmt = lambda x: f"{x:.3f}" if isinstance(x, (int, float)) else "-"  # noqa: E731
    for r in runs:
        # The final values of the metrics the run's mode declared (GRPO's reward, ...).
        own = "  ".join(f"{m.get('label')} {fmt(r.get('final_' + str(m.get('key'))))}"
                        for m in r.get("metrics") or () if isinstance(m, dict) and m.get("final")
                        and ("final_" + str(m.get("key"))) in r)
        print(f"{r['name']:<32} {r.get('kind', '?'):<5} {r['status']:<12} {r.get('step', '-')!s:>6} "
              f"{fmt(r['final_train_loss']):>7} {fmt(r['final_val_loss']):>7}  {own}".rstrip())
    return 0
