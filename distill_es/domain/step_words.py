"""What a person watching reads for each step of a session: the step classes' names (`CallTeacher`,
`ScoreTree`) are the engine's own. Used by progress lines and by the lines that report an interruption.
Plain data with no imports, so the CLI can show it without loading the engine."""

# A kind not listed here (a step added later) is shown as "working".
STEP_WORDS = {
    "Rest": "resting", "CheckReadiness": "checking the traces", "BeginDiagnosis": "starting the diagnosis",
    "Fail": "failing", "CallTeacher": "asking the teacher", "RunTool": "running a tool",
    "SubmitDiagnosis": "recording the diagnosis", "FreezePlan": "freezing the plan",
    "RouteEdit": "routing edit", "ValidateEdit": "validating edit", "SkipEdit": "skipping edit",
    "TrainEdit": "training edit", "ChooseGateTasks": "choosing the gate's tasks",
    "StartApply": "applying edit", "ScoreTree": "scoring the benchmark",
    "CaptureBenchmark": "measuring the benchmark",
    "ApplyEdit": "applying edit", "EvaluateGate": "gating edit", "RevertEdit": "reverting edit",
    "AwaitReview": "waiting for review", "Complete": "completing", "RollBackEdit": "rolling back edit",
    "FinishRollback": "finishing the rollback",
}  # fmt: skip


def step_words(kind: str) -> str:
    return STEP_WORDS.get(kind, "working")
