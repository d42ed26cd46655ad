"""Execution limits and the sandbox: what an administrator sees and sets.

The defaults and the install-wide ceiling come from the settings (``EXECUTION_*`` and
``MAX_EXECUTION_*``); a project's override is set by site administrators only and can never
exceed the ceiling (``thread_layer.sandbox.Limits``)."""

from __future__ import annotations

from exception_layer import ValidationFailed
from services.access import load_project, require_admin
from services.context import Context
from thread_layer.sandbox import LIMIT_SPECS, SPEC_OF


def sandbox_status(ctx: Context) -> dict:
    """The isolation report and the limits (administrators only)."""
    require_admin(ctx)
    runner = ctx.platform.runner
    return {"report": runner.sandbox_report.to_dict(),
            "defaults": runner.default_limits.to_dict(), "ceiling": runner.ceiling.to_dict(),
            "memory_budget_mb": runner.memory_budget_mb,
            "specs": [{"name": s.name, "unit": s.unit, "words": s.words,
                       "enforced_by": s.enforced_by, "setting": s.setting,
                       "ceiling_setting": s.ceiling_setting} for s in LIMIT_SPECS]}


def project_limits(ctx: Context, project_id: str) -> dict:
    """A project's limits: its overrides and what its executions get (its members may read)."""
    project = load_project(ctx, project_id=project_id)
    runner = ctx.platform.runner
    return {"project_id": project.id, "overrides": ctx.db.execution_limits.get(project.id),
            "effective": runner.limits_of(project).to_dict(),
            "defaults": runner.default_limits.to_dict(), "ceiling": runner.ceiling.to_dict()}


def set_project_limits(ctx: Context, project_id: str, data: dict) -> dict:
    """Set a project's overrides (site administrators only): ``{name: value}``, ``null``
    returns a limit to the default.

    Raises:
        AccessDenied: the user is not a site administrator.
        ValidationFailed: an unknown limit, a value that is not a whole number, below the
            limit's minimum, or above the install's ceiling (the field is named).
    """
    require_admin(ctx)
    project = load_project(ctx, project_id=project_id)
    ceiling = ctx.platform.runner.ceiling
    errors: dict[str, str] = {}
    overrides = ctx.db.execution_limits.get(project.id)
    for name, raw in data.items():
        spec = SPEC_OF.get(name)
        if spec is None:
            continue  # like every body: fields it does not know are ignored
        if raw is None:
            overrides.pop(name, None)
            continue
        if isinstance(raw, bool) or not isinstance(raw, int):
            errors[name] = "Must be a whole number."
            continue
        top = getattr(ceiling, name)
        if raw < spec.minimum:
            errors[name] = f"Must be at least {spec.minimum}."
        elif raw > top:
            errors[name] = (f"Must be at most {top}, the install's ceiling "
                            f"({spec.ceiling_setting}).")
        else:
            overrides[name] = raw
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    ctx.db.execution_limits.set(project.id, overrides, ctx.user.id)
    ctx.audit("project.limits", project.id, details={"limits": overrides})
    return project_limits(ctx, project.id)
