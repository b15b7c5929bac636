"""Single-defect copies of the C and JavaScript ports (ports/c, ports/js).

Each mutant is one textual edit of one source file, of the kind a porter
makes: the threshold hard-coded as torch's 5 (ignoring the configured one), ε
moved to the other side of the bias correction, every group stepped with the
first group's learning rate (a value cached across groups), and a driver that
dies part-way through a run.  :func:`make_mutant` copies the port into a folder,
applies the edit (asserting it matched exactly once) and returns the folder.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["Mutant", "C_MUTANTS", "JS_MUTANTS", "make_mutant"]


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    file: str       # the file edited, relative to the port's folder
    old: str        # text replaced (must occur exactly once)
    new: str
    check: str      # the check that must catch it (None: the run must end in "error")
    cause: str      # the cause id it must be given (or "error")


C_MUTANTS = (
    Mutant("threshold_hardcoded_5", "radam.c",
           "rho_t > c->threshold : rho_t >= c->threshold",
           "rho_t > 5.0 : rho_t >= 5.0",
           "threshold", "axis/threshold"),
    Mutant("eps_after_bias_correction", "radam.c",
           "            double d = c->eps_placement == RADAM_EPS_BEFORE_BIAS_CORRECTION",
           "            double d = c->eps_placement != RADAM_EPS_BEFORE_BIAS_CORRECTION",
           "trajectories", "axis/eps_placement"),
    Mutant("first_group_lr_for_all", "driver.c",
           "radam_config cfg = s->groups[gi].cfg;",
           "radam_config cfg = s->groups[gi].cfg;\n        cfg.lr = s->groups[0].cfg.lr;",
           "param_groups", "groups/shared_cache"),
    Mutant("aborts_after_40_steps", "driver.c",
           "    s->steps++;\n    total_steps++;",
           "    s->steps++;\n    total_steps++;\n    if (total_steps == 40) abort();",
           None, "error"),
)

JS_MUTANTS = (
    Mutant("threshold_hardcoded_5", "radam.mjs",
           'config.comparison === ">" ? rhoT > config.threshold : rhoT >= config.threshold',
           'config.comparison === ">" ? rhoT > 5 : rhoT >= 5',
           "threshold", "axis/threshold"),
    Mutant("eps_after_bias_correction", "radam.mjs",
           'const before = config.epsPlacement === "before_bias_correction";',
           'const before = config.epsPlacement !== "before_bias_correction";',
           "trajectories", "axis/eps_placement"),
    Mutant("first_group_lr_for_all", "driver.mjs",
           "const config = g.config;",
           "const config = { ...g.config, lr: s.groups[0].config.lr };",
           "param_groups", "groups/shared_cache"),
    Mutant("killed_after_40_steps", "driver.mjs",
           "    s.steps++;\n    totals.steps++;",
           '    s.steps++;\n    totals.steps++;\n    if (totals.steps === 40) process.kill(process.pid, "SIGKILL");',
           None, "error"),
)


def make_mutant(port: str, mutant: Mutant, into: Path) -> Path:
    """Copy ``ports/<port>`` into ``into`` with ``mutant`` applied; return the copy."""
    source = ROOT / "ports" / port
    dest = into / f"{port}-{mutant.name}"
    shutil.copytree(source, dest)
    path = dest / mutant.file
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise AssertionError(f"mutant {mutant.name}: {mutant.old!r} occurs {count} times in {mutant.file}")
    path.write_text(text.replace(mutant.old, mutant.new))
    return dest
