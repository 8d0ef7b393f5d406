"""`chatbot review`: the review queue from a terminal, the same queue and rules as the Slack cards.

    chatbot review --as U024BE7LH                      # go through the queue, deciding each one
    chatbot review --list                              # print the queue, most urgent first
    chatbot review --approve 12 --as U024BE7LH
    chatbot review --edit 12 --text "..." --as U024BE7LH   # approve an edited text
    chatbot review --reject 12 --reason "..." --as U024BE7LH
    chatbot review --reindex                           # index every approved correction again

`--as` is your reviewer id as REVIEWERS (or ADMIN_USERS) lists it; anyone else is refused. Each
decision is told as a click on the Slack card would tell it: the card is updated (SLACK_BOT_TOKEN) and
the author sent a note in Slack, or in Teams if they suggested the correction there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

import click

from bot.errors import NotAReviewer
from bot.knowledge.kb import KnowledgeBase
from bot.review.desk import Outcome, ReviewDesk
from chatbot.common import load_settings
from chatbot.settings import Settings
from chatbot.wiring import review_desk
from feedback import migrate
from feedback.errors import FeedbackError
from feedback.queries import ReviewCase

CHOICES = {"a": "approve", "d": "draft", "e": "edit", "r": "reject", "s": "skip", "q": "quit"}


def describe(case: ReviewCase, approvals_required: int) -> str:
    """A case as a reviewer reads it in a terminal."""
    correction, answer, question = case.correction, case.answer, case.question
    confidence = "unknown" if answer.confidence is None else f"{answer.confidence:.2f}"
    lines = [
        f"#{correction.id}  {correction.status}  priority {case.priority:.2f} "
        f"(confidence {confidence}, {case.downvotes} thumbs down)",
    ]
    if correction.stale_reason and correction.status == "pending":
        lines.append(f"  ! Back for review: {correction.stale_reason}")
    lines += [
        f"  Question ({question.user_id}, {question.platform}): {question.text}",
        f"  Answer: {answer.text}",
    ]
    lines.insert(1, f"  Queued because: {', '.join(case.why)}")
    if answer.sources:
        sources = "; ".join(
            f"{s.get('title') or s.get('source')} ({s.get('source')})" for s in answer.sources
        )
        lines.append(f"  Retrieved: {sources}")
    if correction.origin == "sampled":
        if correction.draft:
            lines.append(f"  Draft by {correction.draft_model}: {correction.draft}")
        lines.append("  Approve keeps the bot's answer; [d]raft keeps the draft; edit keeps your text.")
        if case.disagreement:
            said = "; ".join(f"{', '.join(who)}: {what}" for what, who in case.kept.items())
            lines.append(f"  ! Reviewers disagree ({said}): another review decides.")
    else:
        lines.append(f"  Correction by {correction.author}: {correction.text}")
    approvals = ", ".join(case.approvals) or "none yet"
    lines.append(f"  Approvals: {len(case.approvals)} of {approvals_required} ({approvals})")
    rejection = next((r for r in case.reviews if r.decision == "reject"), None)
    if rejection is not None:
        lines.append(f"  Rejected by {rejection.reviewer}: {rejection.reason or '(no reason)'}")
    return "\n".join(lines)


def outcome_line(outcome: Outcome) -> str:
    correction = outcome.case.correction
    if correction.status == "approved":
        used = " It is in the knowledge base now." if outcome.indexed else ""
        return f"Correction #{correction.id} approved.{used}"
    if correction.status == "rejected":
        return f"Correction #{correction.id} rejected; the reason is kept."
    return f"Approval recorded: correction #{correction.id} has {len(outcome.case.approvals)} so far."


def _reviewer(desk: ReviewDesk, user: str | None) -> str:
    user = (user or click.prompt("Your reviewer id (as REVIEWERS lists it)")).strip()
    if not desk.is_reviewer(user):
        raise click.ClickException(NotAReviewer.user_message)
    return user


Notify = Callable[[Outcome], None]


def slack_notifier(settings: Settings) -> Notify:
    """With SLACK_BOT_TOKEN set, each decision updates its Slack review card and tells its author."""
    token = settings.slack_bot_token.get_secret_value()
    if not token:
        return lambda _: None
    from bot.slack.review_notify import tell_slack, web_client

    client = web_client(bot_token=token, api_url=settings.slack_api_url)

    def notify(outcome: Outcome) -> None:
        problem = tell_slack(client, outcome, approvals_required=settings.approvals_required)
        if problem:
            click.echo(f"The decision is recorded, but Slack was not told ({problem}).", err=True)

    return notify


def teams_notifier(settings: Settings) -> Notify:
    """Each decision on a correction suggested in Teams is told to its author there (`tell_teams`),
    through a Bot Framework adapter made from MICROSOFT_APP_ID and its password, as the bot's own."""

    def notify(outcome: Outcome) -> None:
        from bot.teams.endpoint import build_adapter
        from bot.teams.review_notify import concerns_teams, tell_teams

        if not concerns_teams(outcome):
            return

        async def tell() -> str | None:
            adapter = build_adapter(
                app_id=settings.microsoft_app_id,
                app_password=settings.microsoft_app_password.get_secret_value(),
                tenant_id=settings.microsoft_app_tenant_id,
            )
            return await tell_teams(adapter, outcome, app_id=settings.microsoft_app_id)

        problem = asyncio.run(tell())
        if problem:
            click.echo(
                f"The decision is recorded, but its author was not told in Teams ({problem}).", err=True
            )

    return notify


def notifier(settings: Settings) -> Notify:
    """The people a decision concerns: the Slack card and a Slack author, or a Teams author."""
    told = (slack_notifier(settings), teams_notifier(settings))

    def notify(outcome: Outcome) -> None:
        for tell in told:
            tell(outcome)

    return notify


def _decide(
    desk: ReviewDesk, notify: Notify, correction_id: int, reviewer: str, decision: str, **extra: str | None
) -> None:
    try:
        outcome = desk.decide(correction_id, reviewer=reviewer, decision=decision, **extra)
    except NotAReviewer as exc:
        raise click.ClickException(exc.user_message) from None
    click.echo(outcome_line(outcome))
    notify(outcome)


def _edited(desk: ReviewDesk, correction_id: int, text: str | None) -> str:
    if text is not None:
        return text
    case = desk.case(correction_id)
    if case is None:
        raise click.ClickException(f"There is no correction #{correction_id}.")
    edited = click.edit(case.correction.text)
    if edited is None or not edited.strip():
        raise click.ClickException("No edited text: nothing was changed.")
    return edited.strip()


@click.command("review")
@click.option("--list", "list_only", is_flag=True, help="Print the pending corrections and exit.")
@click.option("--approve", "approve_id", type=int, metavar="ID", help="Approve correction ID.")
@click.option("--edit", "edit_id", type=int, metavar="ID", help="Approve correction ID with --text.")
@click.option("--draft", "draft_id", type=int, metavar="ID", help="Approve sampled case ID's teacher draft.")
@click.option("--reject", "reject_id", type=int, metavar="ID", help="Reject correction ID (needs --reason).")
@click.option("--text", help="The edited correction, with --edit (without it an editor opens).")
@click.option("--reason", help="Why it is rejected, with --reject; its author is told.")
@click.option("--as", "user", metavar="USER", help="Your reviewer id, as REVIEWERS lists it.")
@click.option("--reindex", is_flag=True, help="Index every approved correction again.")
@click.option("--agreement", is_flag=True, help="Print how often each reviewer agreed with the decision.")
def review(
    list_only: bool,
    approve_id: int | None,
    edit_id: int | None,
    draft_id: int | None,
    agreement: bool,
    reject_id: int | None,
    text: str | None,
    reason: str | None,
    user: str | None,
    reindex: bool,
) -> None:
    """Review proposed corrections: the queue, most urgent first (least confident answers and the
    most thumbs down), and approve, edit or reject them."""
    picked = [x for x in (approve_id, edit_id, draft_id, reject_id) if x is not None]
    if len(picked) > 1:
        raise click.UsageError("Pick one of --approve, --edit, --draft and --reject.")
    if text is not None and edit_id is None:
        raise click.UsageError("--text goes with --edit.")
    if reason is not None and reject_id is None:
        raise click.UsageError("--reason goes with --reject.")
    if reject_id is not None and not (reason or "").strip():
        raise click.UsageError("Say why with --reason: the author is told.")

    settings = load_settings()
    desk = review_desk(settings)
    required = settings.approvals_required
    if reindex:
        click.echo(f"{desk.reindex()} approved corrections are in the knowledge base.")
        return
    if list_only:
        _print_queue(desk, required)
        return
    if agreement:
        _print_agreement(desk)
        return
    reviewer = _reviewer(desk, user)
    notify = notifier(settings)
    if approve_id is not None:
        _decide(desk, notify, approve_id, reviewer, "approve")
    elif edit_id is not None:
        _decide(desk, notify, edit_id, reviewer, "approve", edited_text=_edited(desk, edit_id, text))
    elif draft_id is not None:
        _decide(desk, notify, draft_id, reviewer, "approve", choice="draft")
    elif reject_id is not None:
        _decide(desk, notify, reject_id, reviewer, "reject", reason=(reason or "").strip())
    else:
        _interactive(desk, notify, reviewer, required)


def _print_agreement(desk: ReviewDesk) -> None:
    agreement = desk.agreement()
    if agreement.overall is None:
        click.echo("No sampled case has been decided yet.")
        return
    for reviewer, (agreed, reviewed) in sorted(agreement.by_reviewer.items()):
        click.echo(
            f"{reviewer}: agreed with the decision in {agreed} of {reviewed} ({agreed / reviewed:.0%})"
        )
    click.echo(f"Overall: {agreement.overall:.0%}")


def _print_queue(desk: ReviewDesk, required: int) -> None:
    queue = desk.queue()
    if not queue:
        click.echo("No corrections are waiting for review.")
    for case in queue:
        click.echo(describe(case, required) + "\n")


def _interactive(desk: ReviewDesk, notify: Notify, reviewer: str, required: int) -> None:
    queue = desk.queue()
    if not queue:
        click.echo("No corrections are waiting for review.")
        return
    click.echo(f"{len(queue)} corrections are waiting for review, most urgent first.\n")
    for case in queue:
        correction_id = case.correction.id or 0
        click.echo(describe(case, required))
        if reviewer in case.approvals:
            click.echo("  You approved this one already; it waits for other reviewers.\n")
            continue
        offered = [c for c in CHOICES if c != "d" or case.correction.draft]
        choice = click.prompt(
            "  " + ", ".join(f"[{c}]{CHOICES[c][1:]}" for c in offered),
            type=click.Choice(offered),
            default="s",
        )
        try:
            if CHOICES[choice] == "quit":
                return
            if CHOICES[choice] == "approve":
                _decide(desk, notify, correction_id, reviewer, "approve")
            elif CHOICES[choice] == "draft":
                _decide(desk, notify, correction_id, reviewer, "approve", choice="draft")
            elif CHOICES[choice] == "edit":
                edited = click.prompt("  Corrected answer", default=case.correction.text)
                _decide(desk, notify, correction_id, reviewer, "approve", edited_text=edited)
            elif CHOICES[choice] == "reject":
                why = click.prompt("  Why? (the author is told)")
                _decide(desk, notify, correction_id, reviewer, "reject", reason=why)
        except FeedbackError as exc:  # decided meanwhile by someone else, or empty text
            click.echo(f"  {exc}")
        click.echo()


def recheck_after_ingest(settings: Settings, knowledge: KnowledgeBase, changed_ids: Collection[str]) -> None:
    """After an ingest changed pages: corrections of answers that cited them go back to the review
    queue, and out of the knowledge base until approved again."""
    if not changed_ids or migrate.current(settings.sqlalchemy_url) is None:
        return  # nothing changed, or no store yet and so no corrections
    reopened = review_desk(settings, knowledge=knowledge).recheck(changed_ids)
    if reopened:
        ids = ", ".join(f"#{i}" for i in reopened)
        click.echo(
            f"{len(reopened)} corrections went back to the review queue because a page they relied on "
            f"changed: {ids}. See `chatbot review --list`."
        )
