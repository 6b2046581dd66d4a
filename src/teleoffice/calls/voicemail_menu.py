"""The voicemail menus as pure state machines: leaving a message, and hearing them.

Nothing here plays, records, reads a clock or touches the store.  A menu takes
events (`Digit`, `PlayDone`, `SilenceDetected`, `Timeout`, `HungUp` and the
answers to its own questions: `PinChecked`, `MailboxLoaded`, `RecordingStopped`)
with the current time and returns actions (`Play`, `StopPlay`, `StartRecording`,
`StopRecording`, `CheckPin`, `LoadMailbox`, `MarkHeard`, `DeleteMessage`,
`SaveGreeting`, `DiscardGreeting`, `Hangup`, `Login`).  The driver
(`server.voicemail_session`) carries the actions out and feeds back what
happened; it wakes the menu with `Timeout` once `menu.deadline` has passed.

Theory of operation
-------------------
Every prompt is named as Asterisk names its sound files, so the menus say what
Asterisk's recordings say, and the keys are those of Asterisk's VoiceMailMain
wherever it has the feature (the words of each prompt are in
`media.prompts.PROMPT_TEXTS`).

Leaving a message (`DepositMenu`): the owner's recorded greeting, or "The person
at extension 2 0 1 is unavailable" ("is on the phone" for a busy call), then
"Please leave your message after the tone...", the beep, and the recording
until the caller hangs up, presses #, is silent for a while (the driver
measures that and says `SilenceDetected`) or reaches the maximum length.  Keys
during the greeting: # skips to the beep; * lets the mailbox's owner log in
(`Login`: the driver goes on with a `RetrievalMenu` that asks for the PIN).

Listening (`RetrievalMenu`): unless the caller is already authenticated,
"password", then digits and #; * starts the PIN over; a pause of `digit_timeout`
seconds after some digits counts as #.  Three wrong PINs: "Login incorrect.
Goodbye."  Then "You have 2 new messages and 1 old message", and the keys:

  ====  =========================================  ============================
  key   main menu / after a message                mailbox options (0)
  ====  =========================================  ============================
  1     play the first message                     record your greeting
  4     previous message
  5     repeat the current message
  6     next message
  7     delete the current message, play the next
  9     save the current message, play the next
  0     mailbox options
  \\*    help (the options again)                   back to the main menu
  #     goodbye                                    goodbye
  ====  =========================================  ============================

New messages come first, then old ones, each oldest first (Asterisk's order);
playing a message marks it heard.  A key pressed while a prompt or a message
plays interrupts it and takes effect at once.  Recording a greeting: "After the
tone, say your unavailable message...", beep, record until #, silence or the
maximum, then Asterisk's review menu: 1 accept, 2 listen, 3 record again (*
cancels, # leaves; an unaccepted greeting is thrown away).  A key no menu
knows gets "I'm sorry, I did not understand your response" and the options.
A menu left without an answer repeats its options; after `max_timeouts`
silences in a row it says goodbye and hangs up.

A hang-up (`HungUp`) during a message keeps the message (`StopRecording(keep=
True)`: the store drops it if it is under a second); during a greeting it
throws the greeting away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from teleoffice.media.prompts import number_prompts, spell_prompts

__all__ = [
    "Action",
    "Beep",
    "CheckPin",
    "DeleteMessage",
    "DepositMenu",
    "DepositState",
    "Digit",
    "DiscardGreeting",
    "Event",
    "Greeting",
    "Hangup",
    "HungUp",
    "LoadMailbox",
    "Login",
    "MailboxLoaded",
    "MarkHeard",
    "MenuSettings",
    "MessageAudio",
    "MessageInfo",
    "PinChecked",
    "Play",
    "PlayDone",
    "PlayItem",
    "Prompt",
    "RecordedGreeting",
    "RecordingKind",
    "RecordingStopped",
    "RetrievalMenu",
    "RetrievalState",
    "SaveGreeting",
    "SilenceDetected",
    "StartRecording",
    "StopPlay",
    "StopRecording",
    "Timeout",
]

KEYS = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class MenuSettings:
    """Times in seconds and counts shared by both menus."""

    max_message_seconds: float = 180.0
    max_greeting_seconds: float = 60.0
    input_timeout: float = 10.0  # after a menu's prompt, waiting for a key
    digit_timeout: float = 5.0  # between the digits of a PIN
    pin_tries: int = 3
    max_timeouts: int = 3  # prompts left unanswered in a row before goodbye
    max_pin_digits: int = 32  # more are not kept (the PIN is wrong anyway)

    def __post_init__(self) -> None:
        for name in ("max_message_seconds", "max_greeting_seconds", "input_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.digit_timeout <= 0:
            raise ValueError("digit_timeout must be positive")
        if self.pin_tries < 1 or self.max_timeouts < 1 or self.max_pin_digits < 1:
            raise ValueError("pin_tries, max_timeouts and max_pin_digits must be at least 1")


# -- events (what happened) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Digit:
    """A key pressed (RFC 4733 or SIP INFO): 0-9, *, #, A-D."""

    digit: str

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in KEYS:
            raise ValueError(f"{self.digit!r} is not a DTMF key")


@dataclass(frozen=True, slots=True)
class PlayDone:
    """The last `Play` finished by itself (not stopped or replaced)."""


@dataclass(frozen=True, slots=True)
class SilenceDetected:
    """The caller has been silent, while recording, for the configured time."""


@dataclass(frozen=True, slots=True)
class Timeout:
    """The menu's `deadline` has passed (ignored if it has not)."""


@dataclass(frozen=True, slots=True)
class HungUp:
    """The caller has gone; nothing can be played any more."""


@dataclass(frozen=True, slots=True)
class PinChecked:
    """The answer to `CheckPin`."""

    ok: bool


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What the menu needs of one message."""

    id: int
    heard: bool
    caller_number: str = ""


@dataclass(frozen=True, slots=True)
class MailboxLoaded:
    """The answer to `LoadMailbox`: the messages, newest first (as the store lists them)."""

    messages: tuple[MessageInfo, ...]


@dataclass(frozen=True, slots=True)
class RecordingStopped:
    """The answer to `StopRecording`: whether the recording was kept.

    A message is kept when the store committed it; a greeting when it is long
    enough and not silence, and is then held for review until `SaveGreeting`.
    """

    kept: bool


Event = (
    Digit
    | PlayDone
    | SilenceDetected
    | Timeout
    | HungUp
    | PinChecked
    | MailboxLoaded
    | RecordingStopped
)


# -- actions (what to do) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt by its Asterisk name ("vm-intro", "digits/2")."""

    name: str


@dataclass(frozen=True, slots=True)
class Beep:
    """The tone that says "speak now"."""


@dataclass(frozen=True, slots=True)
class MessageAudio:
    """The recording of a message of the mailbox."""

    message_id: int


@dataclass(frozen=True, slots=True)
class Greeting:
    """The owner's recorded greeting; `fallback` if there is none after all."""

    fallback: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RecordedGreeting:
    """The greeting just recorded and not yet saved (for the review's "listen")."""


PlayItem = Prompt | Beep | MessageAudio | Greeting | RecordedGreeting


@dataclass(frozen=True, slots=True)
class Play:
    """Play the items one after the other, replacing whatever plays now."""

    items: tuple[PlayItem, ...]

    @property
    def prompts(self) -> tuple[str, ...]:
        """The names of the prompts among the items (for tests and logs)."""
        return tuple(item.name for item in self.items if isinstance(item, Prompt))


@dataclass(frozen=True, slots=True)
class StopPlay:
    """Stop what plays (the caller interrupted it)."""


class RecordingKind(Enum):
    MESSAGE = "message"
    GREETING = "greeting"


@dataclass(frozen=True, slots=True)
class StartRecording:
    kind: RecordingKind


@dataclass(frozen=True, slots=True)
class StopRecording:
    """Stop recording; `keep` a message (commit it) or greeting (hold it for review),
    or throw it away.  The driver answers with `RecordingStopped`."""

    keep: bool


@dataclass(frozen=True, slots=True)
class CheckPin:
    """Ask the store whether `pin` is the mailbox's PIN; answered by `PinChecked`."""

    pin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class LoadMailbox:
    """Ask the store for the messages; answered by `MailboxLoaded`."""


@dataclass(frozen=True, slots=True)
class MarkHeard:
    message_id: int


@dataclass(frozen=True, slots=True)
class DeleteMessage:
    message_id: int


@dataclass(frozen=True, slots=True)
class SaveGreeting:
    """Make the greeting held for review the mailbox's greeting."""


@dataclass(frozen=True, slots=True)
class DiscardGreeting:
    """Throw away the greeting held for review."""


@dataclass(frozen=True, slots=True)
class Hangup:
    """The menu is over: end the call."""


@dataclass(frozen=True, slots=True)
class Login:
    """The owner pressed * during the greeting: go on with `RetrievalMenu`, PIN first."""


Action = (
    Play
    | StopPlay
    | StartRecording
    | StopRecording
    | CheckPin
    | LoadMailbox
    | MarkHeard
    | DeleteMessage
    | SaveGreeting
    | DiscardGreeting
    | Hangup
    | Login
)


def _prompts(*names: str) -> tuple[Prompt, ...]:
    return tuple(Prompt(name) for name in names)


_GOODBYE = _prompts("vm-goodbye")
_SORRY = _prompts("vm-sorry")


class _Menu:
    """What both menus share: the deadline, the end, and the play in progress."""

    def __init__(self, settings: MenuSettings) -> None:
        self.settings = settings
        self.deadline: float | None = None
        self.playing = False  # a Play of ours has not finished yet

    @property
    def finished(self) -> bool:
        raise NotImplementedError

    def _play(self, *items: PlayItem) -> Play:
        self.playing = True
        self.deadline = None
        return Play(tuple(items))

    def _expired(self, event: Event, now: float) -> bool:
        """Whether `event` is a Timeout that is due; clears the deadline if so."""
        if not isinstance(event, Timeout) or self.deadline is None or now < self.deadline:
            return False
        self.deadline = None
        return True


# -- leaving a message -------------------------------------------------------------------


class DepositState(Enum):
    GREETING = "greeting"  # the greeting and "leave your message after the tone"
    BEEP = "beep"
    RECORDING = "recording"
    SAVING = "saving"  # stopped; waiting for RecordingStopped
    GOODBYE = "goodbye"
    ENDED = "ended"


class DepositMenu(_Menu):
    """Greeting, beep, recording, goodbye; see the module's documentation.

    `extension` is the mailbox owner's number as callers dial it (said digit by
    digit in the system greeting); `busy` picks "is on the phone" over "is
    unavailable"; `allow_login` lets * during the greeting lead to the owner's
    retrieval menu.  The owner's recorded greeting plays if there is one.
    """

    def __init__(
        self,
        *,
        extension: str,
        busy: bool = False,
        allow_login: bool = True,
        settings: MenuSettings | None = None,
    ) -> None:
        super().__init__(settings or MenuSettings())
        system = (
            "vm-theperson",
            *spell_prompts(extension),
            "vm-isonphone" if busy else "vm-isunavail",
        )
        # The owner's greeting if they recorded one, found when it is played.
        self._greeting = (Greeting(fallback=system), Prompt("vm-intro"))
        self.allow_login = allow_login
        self.state = DepositState.GREETING
        self.saved: bool | None = None  # once stopped: whether the message was kept

    @property
    def finished(self) -> bool:
        return self.state is DepositState.ENDED

    def start(self, now: float) -> list[Action]:
        return [self._play(*self._greeting)]

    def handle(self, event: Event, now: float) -> list[Action]:
        state = self.state
        if state is DepositState.ENDED:
            return []
        if isinstance(event, PlayDone):
            self.playing = False
        if isinstance(event, HungUp):
            self.state = DepositState.ENDED
            self.deadline = None
            return [StopRecording(keep=True)] if state is DepositState.RECORDING else []
        if state is DepositState.GREETING:
            if isinstance(event, PlayDone) or (isinstance(event, Digit) and event.digit == "#"):
                self.state = DepositState.BEEP
                return [self._play(Beep())]
            if isinstance(event, Digit) and event.digit == "*" and self.allow_login:
                self.state = DepositState.ENDED
                return [StopPlay(), Login()]
        elif state is DepositState.BEEP:
            if isinstance(event, PlayDone):
                self.state = DepositState.RECORDING
                self.deadline = now + self.settings.max_message_seconds
                return [StartRecording(RecordingKind.MESSAGE)]
        elif state is DepositState.RECORDING:
            if (
                (isinstance(event, Digit) and event.digit == "#")
                or isinstance(event, SilenceDetected)
                or self._expired(event, now)
            ):
                self.state = DepositState.SAVING
                self.deadline = None
                return [StopRecording(keep=True)]
        elif state is DepositState.SAVING:
            if isinstance(event, RecordingStopped):
                self.saved = event.kept
                self.state = DepositState.GOODBYE
                if event.kept:
                    return [self._play(*_prompts("vm-msgsaved", "vm-goodbye"))]
                return [self._play(*_GOODBYE)]
        elif state is DepositState.GOODBYE and isinstance(event, PlayDone):
            self.state = DepositState.ENDED
            return [Hangup()]
        return []


# -- listening to messages ----------------------------------------------------------------


class RetrievalState(Enum):
    PIN_ENTRY = "pin-entry"  # "password", then digits up to #
    PIN_CHECK = "pin-check"  # waiting for PinChecked
    LOADING = "loading"  # waiting for MailboxLoaded
    MAIN_MENU = "main-menu"  # no current message
    MESSAGE = "message"  # playing the current message
    MESSAGE_MENU = "message-menu"  # the options after a message
    OPTIONS = "options"  # mailbox options
    GREETING_INTRO = "greeting-intro"  # "after the tone..." and the beep
    GREETING_RECORDING = "greeting-recording"
    GREETING_STOPPING = "greeting-stopping"  # waiting for RecordingStopped
    GREETING_REVIEW = "greeting-review"  # 1 accept, 2 listen, 3 again
    GOODBYE = "goodbye"
    ENDED = "ended"


# States in which a key is a menu choice, and the play may be interrupted.
_MENU_STATES = frozenset(
    {
        RetrievalState.MAIN_MENU,
        RetrievalState.MESSAGE,
        RetrievalState.MESSAGE_MENU,
        RetrievalState.OPTIONS,
        RetrievalState.GREETING_REVIEW,
    }
)


class RetrievalMenu(_Menu):
    """PIN, the count of messages, and the message and mailbox menus (see the module)."""

    def __init__(self, *, authenticated: bool, settings: MenuSettings | None = None) -> None:
        super().__init__(settings or MenuSettings())
        self.authenticated = authenticated
        self.state = RetrievalState.LOADING if authenticated else RetrievalState.PIN_ENTRY
        self.messages: list[MessageInfo] = []  # in playing order
        self.current: int | None = None  # index into messages
        self.pin_failures = 0
        self._pin = ""
        self._timeouts = 0

    @property
    def finished(self) -> bool:
        return self.state is RetrievalState.ENDED

    def start(self, now: float) -> list[Action]:
        if self.authenticated:
            return [LoadMailbox()]
        return [self._play(Prompt("vm-password"))]

    # -- the dispatcher -------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        state = self.state
        if state is RetrievalState.ENDED:
            return []
        if isinstance(event, HungUp):
            return self._hung_up()
        if isinstance(event, PlayDone):
            return self._play_done(now)
        if isinstance(event, Timeout):
            return self._timeout(now) if self._expired(event, now) else []
        if isinstance(event, Digit):
            self._timeouts = 0
            if state is RetrievalState.PIN_ENTRY:
                return self._pin_digit(event.digit, now)
            if state in _MENU_STATES:
                return self._key(event.digit)
            if state is RetrievalState.GREETING_RECORDING and event.digit == "#":
                return self._stop_greeting()
            return []  # the menu is busy (checking, loading, recording, goodbye)
        if isinstance(event, PinChecked) and state is RetrievalState.PIN_CHECK:
            return self._pin_checked(event.ok)
        if isinstance(event, MailboxLoaded) and state is RetrievalState.LOADING:
            return self._loaded(event.messages)
        if isinstance(event, RecordingStopped) and state is RetrievalState.GREETING_STOPPING:
            if event.kept:
                self.state = RetrievalState.GREETING_REVIEW
                return [self._play(*_prompts("vm-review"))]
            self.state = RetrievalState.OPTIONS
            return [self._play(*_prompts("vm-tooshort", "teleoffice-options-menu"))]
        if isinstance(event, SilenceDetected) and state is RetrievalState.GREETING_RECORDING:
            return self._stop_greeting()
        return []

    def _hung_up(self) -> list[Action]:
        state = self.state
        self.state = RetrievalState.ENDED
        self.deadline = None
        if state is RetrievalState.GREETING_RECORDING:
            return [StopRecording(keep=False)]
        if state in (RetrievalState.GREETING_STOPPING, RetrievalState.GREETING_REVIEW):
            return [DiscardGreeting()]
        return []

    def _play_done(self, now: float) -> list[Action]:
        self.playing = False
        state = self.state
        if state is RetrievalState.GOODBYE:
            self.state = RetrievalState.ENDED
            return [Hangup()]
        if state is RetrievalState.MESSAGE:
            self.state = RetrievalState.MESSAGE_MENU
            return [self._play(*self._message_options())]
        if state is RetrievalState.GREETING_INTRO:
            self.state = RetrievalState.GREETING_RECORDING
            self.deadline = now + self.settings.max_greeting_seconds
            return [StartRecording(RecordingKind.GREETING)]
        if state is RetrievalState.PIN_ENTRY:
            wait = self.settings.digit_timeout if self._pin else self.settings.input_timeout
            self.deadline = now + wait
        elif state in _MENU_STATES:
            self.deadline = now + self.settings.input_timeout
        return []

    def _timeout(self, now: float) -> list[Action]:
        state = self.state
        if state is RetrievalState.GREETING_RECORDING:
            return self._stop_greeting()
        if state is RetrievalState.PIN_ENTRY and self._pin:
            return self._submit_pin()
        self._timeouts += 1
        if self._timeouts >= self.settings.max_timeouts:
            discard: list[Action] = (
                [DiscardGreeting()] if state is RetrievalState.GREETING_REVIEW else []
            )
            return [*discard, self._goodbye()]
        if state is RetrievalState.PIN_ENTRY:
            return [self._play(Prompt("vm-password"))]
        return [self._play(*self._options_of(state))]

    # -- the PIN -----------------------------------------------------------------------

    def _pin_digit(self, digit: str, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.playing and digit != "*":
            self.playing = False
            actions.append(StopPlay())
        if digit == "#":
            return [*actions, *self._submit_pin()]
        if digit == "*":
            self._pin = ""
            return [self._play(Prompt("vm-password"))]
        if digit.isdigit():
            if len(self._pin) < self.settings.max_pin_digits:
                self._pin += digit
            self.deadline = now + self.settings.digit_timeout
        elif not self.playing:  # A-D: not part of a PIN; keep waiting
            self.deadline = now + self.settings.digit_timeout
        return actions

    def _submit_pin(self) -> list[Action]:
        pin, self._pin = self._pin, ""
        self.state = RetrievalState.PIN_CHECK
        self.deadline = None
        return [CheckPin(pin)]

    def _pin_checked(self, ok: bool) -> list[Action]:
        if ok:
            self.state = RetrievalState.LOADING
            return [LoadMailbox()]
        self.pin_failures += 1
        if self.pin_failures >= self.settings.pin_tries:
            self.state = RetrievalState.GOODBYE
            return [self._play(*_prompts("vm-incorrect", "vm-goodbye"))]
        self.state = RetrievalState.PIN_ENTRY
        return [self._play(*_prompts("vm-incorrect", "vm-password"))]

    # -- the mailbox -----------------------------------------------------------------

    def _loaded(self, messages: tuple[MessageInfo, ...]) -> list[Action]:
        oldest_first = list(reversed(messages))
        self.messages = [m for m in oldest_first if not m.heard] + [
            m for m in oldest_first if m.heard
        ]
        self.current = None
        self.state = RetrievalState.MAIN_MENU
        return [self._play(*self._summary(), *self._main_options())]

    def _summary(self) -> tuple[Prompt, ...]:
        new = sum(not m.heard for m in self.messages)
        old = len(self.messages) - new
        if not new and not old:
            return _prompts("vm-youhave", "vm-no", "vm-messages")
        names = ["vm-youhave"]
        for count, folder in ((new, "vm-INBOX"), (old, "vm-Old")):
            if count:
                if len(names) > 1:
                    names.append("vm-and")
                names += [*number_prompts(count), folder]
                names.append("vm-message" if count == 1 else "vm-messages")
        return _prompts(*names)

    def _main_options(self) -> tuple[Prompt, ...]:
        names = []
        if self.messages:
            folder = "vm-Old" if self.messages[0].heard else "vm-INBOX"
            names += ["vm-onefor", folder, "vm-messages"]
        return _prompts(*names, "teleoffice-mailbox-options", "vm-helpexit")

    def _message_options(self, *, help_: bool = False) -> tuple[Prompt, ...]:
        index = self.current or 0
        names = ["vm-prev"] if index > 0 else []
        names.append("vm-repeat")
        if index < len(self.messages) - 1:
            names.append("vm-next")
        names += ["vm-delete", "vm-savemessage"]
        if help_:
            names.append("teleoffice-mailbox-options")
        names.append("vm-helpexit")
        return _prompts(*names)

    def _options_of(self, state: RetrievalState, *, help_: bool = False) -> tuple[PlayItem, ...]:
        """The options prompt of a menu state (what a timeout or a wrong key repeats)."""
        if state is RetrievalState.OPTIONS:
            return _prompts("teleoffice-options-menu")
        if state is RetrievalState.GREETING_REVIEW:
            return _prompts("vm-review")
        if state in (RetrievalState.MESSAGE, RetrievalState.MESSAGE_MENU):
            return self._message_options(help_=help_)
        return self._main_options()

    def _play_message(self, index: int, *before: PlayItem) -> list[Action]:
        self.current = index
        self.state = RetrievalState.MESSAGE
        message = self.messages[index]
        if index == 0:
            header = ["vm-first", "vm-message"]
        elif index == len(self.messages) - 1:
            header = ["vm-last", "vm-message"]
        else:
            header = ["vm-message", *number_prompts(index + 1)]
        number = message.caller_number
        if number and all(c.isdigit() or c in "+*#" for c in number):
            header += ["vm-from-phonenumber", *spell_prompts(number)]
        else:  # withheld, or a name rather than a number
            header.append("vm-unknown-caller")
        actions: list[Action] = [self._play(*before, *_prompts(*header), MessageAudio(message.id))]
        if not message.heard:
            self.messages[index] = MessageInfo(message.id, True, message.caller_number)
            actions.append(MarkHeard(message.id))
        return actions

    def _after_message(self, index: int, *before: PlayItem) -> list[Action]:
        """Play message `index` if there is one, else "no more messages" and the main menu."""
        if index < len(self.messages):
            return self._play_message(index, *before)
        self.current = None
        self.state = RetrievalState.MAIN_MENU
        if not self.messages:
            return [
                self._play(
                    *before, *_prompts("vm-youhave", "vm-no", "vm-messages"), *self._main_options()
                )
            ]
        return [self._play(*before, Prompt("vm-nomore"), *self._main_options())]

    def _goodbye(self) -> Play:
        self.state = RetrievalState.GOODBYE
        return self._play(*_GOODBYE)

    # -- keys ------------------------------------------------------------------------

    def _key(self, digit: str) -> list[Action]:
        state = self.state
        if digit == "#":
            discard: list[Action] = (
                [DiscardGreeting()] if state is RetrievalState.GREETING_REVIEW else []
            )
            return [*discard, self._goodbye()]
        if state is RetrievalState.OPTIONS:
            return self._options_key(digit)
        if state is RetrievalState.GREETING_REVIEW:
            return self._review_key(digit)
        in_message = state is not RetrievalState.MAIN_MENU and self.current is not None
        if state is RetrievalState.MESSAGE:
            # The key interrupted the message: whatever it plays next (unless it
            # is a message again) ends in the message menu, not in its options.
            self.state = state = RetrievalState.MESSAGE_MENU
        if digit == "1":
            return self._after_message(0)
        if digit == "0":
            self.state = RetrievalState.OPTIONS
            return [self._play(*_prompts("teleoffice-options-menu"))]
        if digit == "*":
            return [self._play(*self._options_of(state, help_=True))]
        if in_message and self.current is not None:
            index = self.current
            message = self.messages[index]
            if digit == "4":
                if index > 0:
                    return self._play_message(index - 1)
                return [self._play(Prompt("vm-nomore"), *self._message_options())]
            if digit == "5":
                return self._play_message(index)
            if digit == "6":
                if index + 1 < len(self.messages):
                    return self._play_message(index + 1)
                self.state = RetrievalState.MESSAGE_MENU
                return [self._play(Prompt("vm-nomore"), *self._message_options())]
            if digit == "7":
                del self.messages[index]
                return [
                    DeleteMessage(message.id),
                    *self._after_message(index, Prompt("vm-deleted")),
                ]
            if digit == "9":
                return self._after_message(index + 1, Prompt("vm-msgsaved"))
        return [self._play(*_SORRY, *self._options_of(state))]

    def _options_key(self, digit: str) -> list[Action]:
        if digit == "1":
            self.state = RetrievalState.GREETING_INTRO
            return [self._play(Prompt("vm-rec-unv"), Beep())]
        if digit == "*":
            self.current = None
            self.state = RetrievalState.MAIN_MENU
            return [self._play(*self._main_options())]
        return [self._play(*_SORRY, *self._options_of(RetrievalState.OPTIONS))]

    def _review_key(self, digit: str) -> list[Action]:
        if digit == "1":
            self.state = RetrievalState.OPTIONS
            return [SaveGreeting(), self._play(*_prompts("vm-msgsaved", "teleoffice-options-menu"))]
        if digit == "2":
            return [self._play(RecordedGreeting(), Prompt("vm-review"))]
        if digit == "3":
            self.state = RetrievalState.GREETING_INTRO
            return [DiscardGreeting(), self._play(Prompt("vm-rec-unv"), Beep())]
        if digit == "*":
            self.state = RetrievalState.OPTIONS
            return [DiscardGreeting(), self._play(*_prompts("teleoffice-options-menu"))]
        return [self._play(*_SORRY, Prompt("vm-review"))]

    def _stop_greeting(self) -> list[Action]:
        self.state = RetrievalState.GREETING_STOPPING
        self.deadline = None
        return [StopRecording(keep=True)]
