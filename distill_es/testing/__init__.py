"""The testing kit: hypothesis strategies, a session state machine, scripted fakes and fixtures."""

from distill_es.testing.fakes import ScriptedJudge, ScriptedStudent, ScriptedTeacher

__all__ = ["ScriptedJudge", "ScriptedStudent", "ScriptedTeacher"]
