"""A trainer callback that logs to a local trackio run: transformers' own leaves out the group (the sweep)."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class TrackioReporter(TrainerCallback):
    """Logs each train and eval point to trackio's run `name` in `project`, grouped by `group`."""

    def __init__(self, project: str, name: str, group: str | None) -> None:
        self.project, self.name, self.group = project, name, group
        self.run: Any = None

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.is_world_process_zero and self.run is None:
            import trackio

            self.run = trackio.init(project=self.project, name=self.name, group=self.group, resume="allow",
                                    config={"learning_rate": args.learning_rate, "max_steps": state.max_steps},
                                    embed=False, auto_log_gpu=False, auto_log_cpu=False)

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if self.run is None or not logs:
            return
        numbers = {key: value for key, value in logs.items()
                   if isinstance(value, int | float) and not isinstance(value, bool)}
        if numbers:
            import trackio

            trackio.log(numbers, step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.run is not None:
            import trackio

            trackio.finish()
            self.run = None
