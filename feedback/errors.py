"""Errors raised by the store. Each message is fit to show a user.

FeedbackError
├── NotFound
│   ├── UnknownAnswer
│   ├── UnknownCorrection
│   ├── UnknownAdapter
│   └── UnknownRun
└── InvalidInput
    ├── EmptyCorrection
    └── InvalidTransition
        ├── RunInProgress
        └── RunPending
"""


class FeedbackError(Exception):
    """Base class: nothing was written when one of these is raised."""


class NotFound(FeedbackError):
    pass


class UnknownAnswer(NotFound):
    def __init__(self, answer_id: int) -> None:
        super().__init__(f"There is no answer #{answer_id}; it may have been deleted.")


class UnknownCorrection(NotFound):
    def __init__(self, correction_id: int) -> None:
        super().__init__(f"There is no correction #{correction_id}.")


class UnknownAdapter(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"There is no adapter called {name!r}; `chatbot adapters list` shows them.")


class UnknownRun(NotFound):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"There is no retrain run #{run_id}.")


class InvalidInput(FeedbackError):
    pass


class EmptyCorrection(InvalidInput):
    def __init__(self) -> None:
        super().__init__("A correction needs some text: write what the answer should have said.")


class InvalidTransition(InvalidInput):
    pass


class RunInProgress(InvalidTransition):
    def __init__(self) -> None:
        super().__init__("A retrain is already running; wait for it to finish.")


class RunPending(InvalidTransition):
    def __init__(self, run_id: int, status: str) -> None:
        self.run_id = run_id
        super().__init__(f"Retrain #{run_id} is already {status}; it covers everything taught so far.")
