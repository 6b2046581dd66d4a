"""Tests of calls.voicemail_menu: every key in every state of both menus, PINs, timeouts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from teleoffice.calls.voicemail_menu import (
    Action,
    Beep,
    CheckPin,
    DeleteMessage,
    DepositMenu,
    DepositState,
    Digit,
    DiscardGreeting,
    Greeting,
    Hangup,
    HungUp,
    LoadMailbox,
    Login,
    MailboxLoaded,
    MarkHeard,
    MenuSettings,
    MessageAudio,
    MessageInfo,
    PinChecked,
    Play,
    PlayDone,
    Prompt,
    RecordedGreeting,
    RecordingKind,
    RecordingStopped,
    RetrievalMenu,
    RetrievalState,
    SaveGreeting,
    SilenceDetected,
    StartRecording,
    StopPlay,
    StopRecording,
    Timeout,
)

KEYS = "0123456789*#ABCD"
SETTINGS = MenuSettings(
    max_message_seconds=60, max_greeting_seconds=30, input_timeout=8, digit_timeout=4
)
GOODBYE = "play:vm-goodbye"
SORRY = "vm-sorry"
MAIN_NEW = "vm-onefor,vm-INBOX,vm-messages,teleoffice-mailbox-options,vm-helpexit"
MAIN_EMPTY = "teleoffice-mailbox-options,vm-helpexit"
OPTIONS = "teleoffice-options-menu"


def state_of(menu: DepositMenu | RetrievalMenu) -> DepositState | RetrievalState:
    """The state, through a call so that mypy does not narrow it from one assert to the next."""
    return menu.state


def show(actions: list[Action]) -> list[str]:
    """A compact, readable form of actions for comparing with expectations."""
    out = []
    for action in actions:
        if isinstance(action, Play):
            parts = []
            for item in action.items:
                if isinstance(item, Prompt):
                    parts.append(item.name)
                elif isinstance(item, Beep):
                    parts.append("BEEP")
                elif isinstance(item, MessageAudio):
                    parts.append(f"MSG{item.message_id}")
                elif isinstance(item, RecordedGreeting):
                    parts.append("RECORDED")
                else:
                    assert isinstance(item, Greeting)
                    parts.append("GREETING(" + ",".join(item.fallback) + ")")
            out.append("play:" + ",".join(parts))
        elif isinstance(action, MarkHeard | DeleteMessage):
            out.append(f"{type(action).__name__}:{action.message_id}")
        elif isinstance(action, StopRecording):
            out.append(f"StopRecording:{'keep' if action.keep else 'drop'}")
        elif isinstance(action, StartRecording):
            out.append(f"StartRecording:{action.kind.value}")
        elif isinstance(action, CheckPin):
            out.append(f"CheckPin:{action.pin}")
        else:
            out.append(type(action).__name__)
    return out


# ======================================================================================
# Leaving a message
# ======================================================================================


def deposit(state: DepositState = DepositState.GREETING, **options: object) -> DepositMenu:
    """A deposit menu driven into `state` at time 100."""
    menu = DepositMenu(extension="201", settings=SETTINGS, **options)  # type: ignore[arg-type]
    menu.start(100.0)
    steps: list[object] = [PlayDone(), PlayDone(), Digit("#"), RecordingStopped(kept=True)]
    while menu.state is not state:
        event = steps.pop(0)
        menu.handle(event, 100.0)  # type: ignore[arg-type]
    return menu


def test_deposit_plays_the_system_greeting_unless_there_is_a_recorded_one() -> None:
    menu = DepositMenu(extension="201")
    assert show(menu.start(0.0)) == [
        "play:GREETING(vm-theperson,digits/2,digits/0,digits/1,vm-isunavail),vm-intro"
    ]
    assert state_of(menu) is DepositState.GREETING
    assert menu.deadline is None
    busy = DepositMenu(extension="*17", busy=True)
    assert show(busy.start(0.0)) == [
        "play:GREETING(vm-theperson,digits/star,digits/1,digits/7,vm-isonphone),vm-intro"
    ]
    with pytest.raises(ValueError, match="no prompt"):
        DepositMenu(extension="2 01")


def test_deposit_greeting_beep_record_goodbye() -> None:
    menu = DepositMenu(extension="201", settings=SETTINGS)
    menu.start(10.0)
    assert show(menu.handle(PlayDone(), 15.0)) == ["play:BEEP"]
    assert state_of(menu) is DepositState.BEEP
    assert show(menu.handle(PlayDone(), 15.3)) == ["StartRecording:message"]
    assert state_of(menu) is DepositState.RECORDING
    assert menu.deadline == pytest.approx(75.3)
    assert show(menu.handle(SilenceDetected(), 30.0)) == ["StopRecording:keep"]
    assert state_of(menu) is DepositState.SAVING
    assert menu.deadline is None
    assert show(menu.handle(RecordingStopped(kept=True), 30.1)) == ["play:vm-msgsaved,vm-goodbye"]
    assert menu.saved is True
    assert show(menu.handle(PlayDone(), 33.0)) == ["Hangup"]
    assert menu.finished
    for event in (Digit("1"), PlayDone(), HungUp(), Timeout(), RecordingStopped(kept=True)):
        assert menu.handle(event, 40.0) == []


def test_deposit_stops_at_the_maximum_length() -> None:
    menu = deposit(DepositState.RECORDING)
    assert menu.deadline == pytest.approx(160.0)
    assert menu.handle(Timeout(), 159.9) == []  # not due yet
    assert show(menu.handle(Timeout(), 160.0)) == ["StopRecording:keep"]
    assert state_of(menu) is DepositState.SAVING


def test_deposit_a_message_the_store_did_not_keep_is_not_called_saved() -> None:
    menu = deposit(DepositState.SAVING)
    assert show(menu.handle(RecordingStopped(kept=False), 0.0)) == [GOODBYE]
    assert menu.saved is False
    assert state_of(menu) is DepositState.GOODBYE


@pytest.mark.parametrize("key", KEYS)
def test_deposit_every_key_in_every_state(key: str) -> None:
    expected: dict[DepositState, tuple[list[str], DepositState]] = {
        DepositState.GREETING: {
            "#": (["play:BEEP"], DepositState.BEEP),
            "*": (["StopPlay", "Login"], DepositState.ENDED),
        }.get(key, ([], DepositState.GREETING)),
        DepositState.BEEP: ([], DepositState.BEEP),
        DepositState.RECORDING: (
            (["StopRecording:keep"], DepositState.SAVING)
            if key == "#"
            else ([], DepositState.RECORDING)
        ),
        DepositState.SAVING: ([], DepositState.SAVING),
        DepositState.GOODBYE: ([], DepositState.GOODBYE),
    }
    for state, (actions, after) in expected.items():
        menu = deposit(state)
        assert show(menu.handle(Digit(key), 100.0)) == actions, (state, key)
        assert state_of(menu) is after, (state, key)


def test_deposit_star_is_only_a_login_when_allowed() -> None:
    menu = deposit(DepositState.GREETING, allow_login=False)
    assert menu.handle(Digit("*"), 0.0) == []
    assert state_of(menu) is DepositState.GREETING


@pytest.mark.parametrize("state", [s for s in DepositState if s is not DepositState.ENDED])
def test_deposit_hang_up_in_every_state(state: DepositState) -> None:
    menu = deposit(state)
    actions = show(menu.handle(HungUp(), 0.0))
    assert actions == (["StopRecording:keep"] if state is DepositState.RECORDING else [])
    assert menu.finished


def test_deposit_ignores_what_does_not_concern_its_state() -> None:
    menu = deposit(DepositState.GREETING)
    for event in (
        SilenceDetected(),
        Timeout(),
        RecordingStopped(kept=True),
        PinChecked(ok=True),
        MailboxLoaded(()),
    ):
        assert menu.handle(event, 0.0) == []
    assert state_of(menu) is DepositState.GREETING
    recording = deposit(DepositState.RECORDING)
    assert recording.handle(PlayDone(), 0.0) == []  # the silence after the beep
    assert state_of(recording) is DepositState.RECORDING


# ======================================================================================
# Listening to messages
# ======================================================================================

# As the store lists them: newest first.  Played: new ones oldest first (1, 3),
# then old ones (2).
STORED = (
    MessageInfo(3, heard=False, caller_number="203"),
    MessageInfo(2, heard=True, caller_number=""),
    MessageInfo(1, heard=False, caller_number="+4930"),
)
HEADER_1 = (
    "vm-first,vm-message,vm-from-phonenumber,letters/plus,digits/4,digits/9,digits/3,digits/0"
)
HEADER_3 = "vm-message,digits/2,vm-from-phonenumber,digits/2,digits/0,digits/3"
HEADER_2 = "vm-last,vm-message,vm-unknown-caller"


def logged_in(messages: tuple[MessageInfo, ...] = STORED) -> RetrievalMenu:
    menu = RetrievalMenu(authenticated=True, settings=SETTINGS)
    assert show(menu.start(0.0)) == ["LoadMailbox"]
    menu.handle(MailboxLoaded(messages), 0.0)
    assert state_of(menu) is RetrievalState.MAIN_MENU
    return menu


def at_message(index: int, messages: tuple[MessageInfo, ...] = STORED) -> RetrievalMenu:
    """Playing message `index` (in playing order), the ones before it heard."""
    menu = logged_in(messages)
    menu.handle(Digit("1"), 0.0)
    for _ in range(index):
        menu.handle(Digit("6"), 0.0)
    assert state_of(menu) is RetrievalState.MESSAGE
    assert menu.current == index
    return menu


def after_message(index: int, messages: tuple[MessageInfo, ...] = STORED) -> RetrievalMenu:
    menu = at_message(index, messages)
    menu.handle(PlayDone(), 0.0)
    assert state_of(menu) is RetrievalState.MESSAGE_MENU
    return menu


def in_options() -> RetrievalMenu:
    menu = logged_in()
    menu.handle(Digit("0"), 0.0)
    assert state_of(menu) is RetrievalState.OPTIONS
    return menu


def recording_greeting() -> RetrievalMenu:
    menu = in_options()
    menu.handle(Digit("1"), 0.0)
    assert show(menu.handle(PlayDone(), 50.0)) == ["StartRecording:greeting"]
    assert state_of(menu) is RetrievalState.GREETING_RECORDING
    assert menu.deadline == pytest.approx(80.0)
    return menu


def reviewing() -> RetrievalMenu:
    menu = recording_greeting()
    assert show(menu.handle(Digit("#"), 0.0)) == ["StopRecording:keep"]
    assert state_of(menu) is RetrievalState.GREETING_STOPPING
    assert show(menu.handle(RecordingStopped(kept=True), 0.0)) == ["play:vm-review"]
    assert state_of(menu) is RetrievalState.GREETING_REVIEW
    return menu


# -- the PIN -------------------------------------------------------------------------------


def pin_menu() -> RetrievalMenu:
    menu = RetrievalMenu(authenticated=False, settings=SETTINGS)
    assert show(menu.start(0.0)) == ["play:vm-password"]
    assert state_of(menu) is RetrievalState.PIN_ENTRY
    return menu


def test_pin_digits_then_pound() -> None:
    menu = pin_menu()
    assert show(menu.handle(Digit("1"), 1.0)) == ["StopPlay"]  # interrupts "password"
    assert menu.deadline == pytest.approx(5.0)
    assert menu.handle(Digit("2"), 2.0) == []
    assert menu.handle(Digit("A"), 2.5) == []  # not part of a PIN
    assert menu.handle(Digit("3"), 3.0) == []
    check = menu.handle(Digit("#"), 3.5)
    assert show(check) == ["CheckPin:123"]
    assert "123" not in repr(check)  # PINs stay out of logs
    assert state_of(menu) is RetrievalState.PIN_CHECK
    assert menu.deadline is None
    for key in KEYS:
        assert menu.handle(Digit(key), 4.0) == []
    assert show(menu.handle(PinChecked(ok=True), 4.0)) == ["LoadMailbox"]
    assert state_of(menu) is RetrievalState.LOADING
    for key in KEYS:
        assert menu.handle(Digit(key), 4.0) == []
    assert show(menu.handle(MailboxLoaded(()), 4.0)) == [
        f"play:vm-youhave,vm-no,vm-messages,{MAIN_EMPTY}"
    ]


def test_pin_after_the_prompt_and_a_pause_instead_of_pound() -> None:
    menu = pin_menu()
    menu.handle(PlayDone(), 2.0)
    assert menu.deadline == pytest.approx(10.0)  # waiting for the first digit
    assert menu.handle(Digit("4"), 3.0) == []  # nothing playing: nothing to stop
    assert menu.handle(Digit("2"), 4.0) == []
    assert menu.handle(Timeout(), 7.9) == []
    assert show(menu.handle(Timeout(), 8.0)) == ["CheckPin:42"]


def test_pin_star_starts_over() -> None:
    menu = pin_menu()
    menu.handle(Digit("9"), 1.0)
    assert show(menu.handle(Digit("*"), 2.0)) == ["play:vm-password"]
    assert show(menu.handle(Digit("7"), 3.0)) == ["StopPlay"]  # the prompt again, cut short
    assert show(menu.handle(Digit("#"), 4.0)) == ["CheckPin:7"]


def test_three_wrong_pins_say_goodbye() -> None:
    menu = pin_menu()
    for attempt in (1, 2):
        menu.handle(Digit("0"), 0.0)
        menu.handle(Digit("#"), 0.0)
        assert show(menu.handle(PinChecked(ok=False), 0.0)) == ["play:vm-incorrect,vm-password"]
        assert menu.pin_failures == attempt
        assert state_of(menu) is RetrievalState.PIN_ENTRY
    menu.handle(Digit("#"), 0.0)  # an empty PIN is a wrong one too
    assert show(menu.handle(PinChecked(ok=False), 0.0)) == ["play:vm-incorrect,vm-goodbye"]
    assert state_of(menu) is RetrievalState.GOODBYE
    for key in KEYS:
        assert menu.handle(Digit(key), 0.0) == []
    assert show(menu.handle(PlayDone(), 0.0)) == ["Hangup"]
    assert menu.finished


def test_pin_right_on_the_last_try() -> None:
    menu = pin_menu()
    for _ in range(2):
        menu.handle(Digit("#"), 0.0)
        menu.handle(PinChecked(ok=False), 0.0)
    menu.handle(Digit("#"), 0.0)
    assert show(menu.handle(PinChecked(ok=True), 0.0)) == ["LoadMailbox"]


def test_pin_nobody_typing_says_goodbye_after_three_prompts() -> None:
    menu = pin_menu()
    for _ in range(2):
        menu.handle(PlayDone(), 0.0)
        assert show(menu.handle(Timeout(), 10.0)) == ["play:vm-password"]
    menu.handle(PlayDone(), 20.0)
    assert show(menu.handle(Timeout(), 30.0)) == [GOODBYE]


def test_pin_is_capped_in_length() -> None:
    menu = RetrievalMenu(authenticated=False, settings=MenuSettings(max_pin_digits=4))
    menu.start(0.0)
    for digit in "123456789":
        menu.handle(Digit(digit), 0.0)
    assert show(menu.handle(Digit("#"), 0.0)) == ["CheckPin:1234"]


def test_pin_every_key() -> None:
    for key in KEYS:
        menu = pin_menu()
        menu.handle(PlayDone(), 0.0)
        actions = show(menu.handle(Digit(key), 1.0))
        if key == "#":
            assert actions == ["CheckPin:"]
        elif key == "*":
            assert actions == ["play:vm-password"]
        else:
            assert actions == []
            assert state_of(menu) is RetrievalState.PIN_ENTRY
            assert menu.deadline == pytest.approx(5.0)


# -- the summary and the order of messages --------------------------------------------------


@pytest.mark.parametrize(
    ("heard", "summary"),
    [
        ([], "vm-youhave,vm-no,vm-messages"),
        ([False], "vm-youhave,digits/1,vm-INBOX,vm-message"),
        ([True], "vm-youhave,digits/1,vm-Old,vm-message"),
        (
            [False, False, True],
            "vm-youhave,digits/2,vm-INBOX,vm-messages,vm-and,digits/1,vm-Old,vm-message",
        ),
        ([True] * 3, "vm-youhave,digits/3,vm-Old,vm-messages"),
        ([False] * 21, "vm-youhave,digits/20,digits/1,vm-INBOX,vm-messages"),
    ],
)
def test_summary(heard: list[bool], summary: str) -> None:
    menu = RetrievalMenu(authenticated=True)
    menu.start(0.0)
    messages = tuple(MessageInfo(n, h) for n, h in enumerate(heard))
    actions = show(menu.handle(MailboxLoaded(messages), 0.0))
    if not heard:
        assert actions == [f"play:{summary},{MAIN_EMPTY}"]
    elif all(heard):
        assert actions == [f"play:{summary},vm-onefor,vm-Old,vm-messages,{MAIN_EMPTY}"]
    else:
        assert actions == [f"play:{summary},{MAIN_NEW}"]


def test_new_messages_first_each_oldest_first() -> None:
    menu = logged_in()
    assert [m.id for m in menu.messages] == [1, 3, 2]
    stored = (
        MessageInfo(9, heard=True),
        MessageInfo(8, heard=False),
        MessageInfo(7, heard=True),
        MessageInfo(6, heard=False),
    )
    assert [m.id for m in logged_in(stored).messages] == [6, 8, 7, 9]


def test_playing_marks_heard_once() -> None:
    menu = logged_in()
    assert show(menu.handle(Digit("1"), 0.0)) == [f"play:{HEADER_1},MSG1", "MarkHeard:1"]
    assert show(menu.handle(Digit("5"), 0.0)) == [f"play:{HEADER_1},MSG1"]
    assert show(menu.handle(Digit("6"), 0.0)) == [f"play:{HEADER_3},MSG3", "MarkHeard:3"]
    assert show(menu.handle(Digit("6"), 0.0)) == [f"play:{HEADER_2},MSG2"]  # already old
    assert all(m.heard for m in menu.messages)


def test_after_a_message_its_options_then_a_wait() -> None:
    menu = at_message(1)
    assert show(menu.handle(PlayDone(), 20.0)) == [
        "play:vm-prev,vm-repeat,vm-next,vm-delete,vm-savemessage,vm-helpexit"
    ]
    assert state_of(menu) is RetrievalState.MESSAGE_MENU
    assert menu.deadline is None
    assert menu.handle(PlayDone(), 25.0) == []
    assert menu.deadline == pytest.approx(33.0)
    first = after_message(0)
    assert show(first.handle(Digit("*"), 0.0)) == [
        "play:vm-repeat,vm-next,vm-delete,vm-savemessage,teleoffice-mailbox-options,vm-helpexit"
    ]


# -- every key in every menu state ----------------------------------------------------------

MESSAGE_OPTIONS_1 = "vm-prev,vm-repeat,vm-next,vm-delete,vm-savemessage,vm-helpexit"
MESSAGE_HELP_1 = (
    "vm-prev,vm-repeat,vm-next,vm-delete,vm-savemessage,teleoffice-mailbox-options,vm-helpexit"
)


def message_keys() -> dict[str, tuple[list[str], RetrievalState]]:
    """At message 2 of 3 (id 3), playing or after it."""
    return {
        "1": ([f"play:{HEADER_1},MSG1"], RetrievalState.MESSAGE),
        "4": ([f"play:{HEADER_1},MSG1"], RetrievalState.MESSAGE),
        "5": ([f"play:{HEADER_3},MSG3"], RetrievalState.MESSAGE),
        "6": ([f"play:{HEADER_2},MSG2"], RetrievalState.MESSAGE),
        # After the delete, message 2 (id 2) is the last of two.
        "7": (
            ["DeleteMessage:3", "play:vm-deleted,vm-last,vm-message,vm-unknown-caller,MSG2"],
            RetrievalState.MESSAGE,
        ),
        "9": ([f"play:vm-msgsaved,{HEADER_2},MSG2"], RetrievalState.MESSAGE),
        "0": ([f"play:{OPTIONS}"], RetrievalState.OPTIONS),
        "*": ([f"play:{MESSAGE_HELP_1}"], RetrievalState.MESSAGE_MENU),
        "#": ([GOODBYE], RetrievalState.GOODBYE),
    }


def sorry(options: str) -> str:
    return f"play:{SORRY},{options}"


@pytest.mark.parametrize("key", KEYS)
def test_message_keys_while_playing_and_after(key: str) -> None:
    expected = message_keys().get(key, ([sorry(MESSAGE_OPTIONS_1)], RetrievalState.MESSAGE_MENU))
    for make in (at_message, after_message):
        menu = make(1)
        assert show(menu.handle(Digit(key), 0.0)) == expected[0], (make.__name__, key)
        assert state_of(menu) is expected[1], (make.__name__, key)
        assert menu.deadline is None


@pytest.mark.parametrize("key", KEYS)
def test_main_menu_keys(key: str) -> None:
    expected = {
        "1": ([f"play:{HEADER_1},MSG1", "MarkHeard:1"], RetrievalState.MESSAGE),
        "0": ([f"play:{OPTIONS}"], RetrievalState.OPTIONS),
        "*": ([f"play:{MAIN_NEW}"], RetrievalState.MAIN_MENU),
        "#": ([GOODBYE], RetrievalState.GOODBYE),
    }.get(key, ([sorry(MAIN_NEW)], RetrievalState.MAIN_MENU))
    menu = logged_in()
    assert show(menu.handle(Digit(key), 0.0)) == expected[0]
    assert state_of(menu) is expected[1]


@pytest.mark.parametrize("key", KEYS)
def test_empty_mailbox_keys(key: str) -> None:
    expected = {
        "1": ([f"play:vm-youhave,vm-no,vm-messages,{MAIN_EMPTY}"], RetrievalState.MAIN_MENU),
        "0": ([f"play:{OPTIONS}"], RetrievalState.OPTIONS),
        "*": ([f"play:{MAIN_EMPTY}"], RetrievalState.MAIN_MENU),
        "#": ([GOODBYE], RetrievalState.GOODBYE),
    }.get(key, ([sorry(MAIN_EMPTY)], RetrievalState.MAIN_MENU))
    menu = logged_in(())
    assert show(menu.handle(Digit(key), 0.0)) == expected[0]
    assert state_of(menu) is expected[1]
    assert menu.current is None


@pytest.mark.parametrize("key", KEYS)
def test_options_keys(key: str) -> None:
    expected = {
        "1": (["play:vm-rec-unv,BEEP"], RetrievalState.GREETING_INTRO),
        "*": ([f"play:{MAIN_NEW}"], RetrievalState.MAIN_MENU),
        "#": ([GOODBYE], RetrievalState.GOODBYE),
    }.get(key, ([sorry(OPTIONS)], RetrievalState.OPTIONS))
    menu = in_options()
    assert show(menu.handle(Digit(key), 0.0)) == expected[0]
    assert state_of(menu) is expected[1]


@pytest.mark.parametrize("key", KEYS)
def test_greeting_recording_keys(key: str) -> None:
    # While "after the tone..." plays, keys do nothing.
    intro = in_options()
    intro.handle(Digit("1"), 0.0)
    assert intro.handle(Digit(key), 0.0) == []
    assert state_of(intro) is RetrievalState.GREETING_INTRO
    # While recording only # counts.
    menu = recording_greeting()
    actions = show(menu.handle(Digit(key), 0.0))
    if key == "#":
        assert actions == ["StopRecording:keep"]
        assert state_of(menu) is RetrievalState.GREETING_STOPPING
        for other in KEYS:  # and while it stops, nothing
            assert menu.handle(Digit(other), 0.0) == []
    else:
        assert actions == []
        assert state_of(menu) is RetrievalState.GREETING_RECORDING


@pytest.mark.parametrize("key", KEYS)
def test_greeting_review_keys(key: str) -> None:
    expected = {
        "1": (["SaveGreeting", f"play:vm-msgsaved,{OPTIONS}"], RetrievalState.OPTIONS),
        "2": (["play:RECORDED,vm-review"], RetrievalState.GREETING_REVIEW),
        "3": (["DiscardGreeting", "play:vm-rec-unv,BEEP"], RetrievalState.GREETING_INTRO),
        "*": (["DiscardGreeting", f"play:{OPTIONS}"], RetrievalState.OPTIONS),
        "#": (["DiscardGreeting", GOODBYE], RetrievalState.GOODBYE),
    }.get(key, ([sorry("vm-review")], RetrievalState.GREETING_REVIEW))
    for prompt_done in (False, True):
        menu = reviewing()
        if prompt_done:
            menu.handle(PlayDone(), 0.0)
        assert show(menu.handle(Digit(key), 0.0)) == expected[0]
        assert state_of(menu) is expected[1]


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetrievalMenu(authenticated=True, settings=SETTINGS),  # loading
        logged_in,
    ],
)
def test_goodbye_and_ended_ignore_keys(make: Callable[[], RetrievalMenu]) -> None:
    menu = make()
    if menu.state is RetrievalState.LOADING:
        for key in KEYS:
            assert menu.handle(Digit(key), 0.0) == []
        return
    menu.handle(Digit("#"), 0.0)
    for key in KEYS:
        assert menu.handle(Digit(key), 0.0) == []
    assert show(menu.handle(PlayDone(), 0.0)) == ["Hangup"]
    for event in (Digit("1"), PlayDone(), Timeout(), HungUp(), PinChecked(ok=True)):
        assert menu.handle(event, 0.0) == []


# -- deleting and saving to the end ------------------------------------------------------


def test_deleting_the_last_message_in_the_list() -> None:
    menu = at_message(2)
    assert show(menu.handle(Digit("7"), 0.0)) == [
        "DeleteMessage:2",
        f"play:vm-deleted,vm-nomore,{MAIN_NEW.replace('vm-INBOX', 'vm-Old')}",
    ]
    assert state_of(menu) is RetrievalState.MAIN_MENU
    assert menu.current is None
    assert [m.id for m in menu.messages] == [1, 3]


def test_deleting_every_message() -> None:
    menu = at_message(0)
    assert show(menu.handle(Digit("7"), 0.0)) == [
        "DeleteMessage:1",
        "play:vm-deleted,vm-first,vm-message,vm-from-phonenumber,digits/2,digits/0,digits/3,MSG3",
        "MarkHeard:3",
    ]
    assert show(menu.handle(Digit("7"), 0.0)) == [
        "DeleteMessage:3",
        "play:vm-deleted,vm-first,vm-message,vm-unknown-caller,MSG2",
    ]
    assert show(menu.handle(Digit("7"), 0.0)) == [
        "DeleteMessage:2",
        f"play:vm-deleted,vm-youhave,vm-no,vm-messages,{MAIN_EMPTY}",
    ]
    assert menu.messages == []
    assert state_of(menu) is RetrievalState.MAIN_MENU
    assert show(menu.handle(Digit("7"), 0.0)) == [sorry(MAIN_EMPTY)]  # nothing left to delete


def test_deleting_the_only_message() -> None:
    menu = at_message(0, (MessageInfo(5, heard=False, caller_number="202"),))
    assert show(menu.handle(Digit("7"), 0.0)) == [
        "DeleteMessage:5",
        f"play:vm-deleted,vm-youhave,vm-no,vm-messages,{MAIN_EMPTY}",
    ]


def test_no_message_before_the_first_or_after_the_last() -> None:
    first = after_message(0)
    assert show(first.handle(Digit("4"), 0.0)) == [
        "play:vm-nomore,vm-repeat,vm-next,vm-delete,vm-savemessage,vm-helpexit"
    ]
    assert state_of(first) is RetrievalState.MESSAGE_MENU
    assert first.current == 0
    last = at_message(2)
    assert show(last.handle(Digit("6"), 0.0)) == [
        "play:vm-nomore,vm-prev,vm-repeat,vm-delete,vm-savemessage,vm-helpexit"
    ]
    assert state_of(last) is RetrievalState.MESSAGE_MENU
    saved = after_message(2)
    assert show(saved.handle(Digit("9"), 0.0)) == [
        f"play:vm-msgsaved,vm-nomore,{MAIN_NEW.replace('vm-INBOX', 'vm-Old')}"
    ]
    assert state_of(saved) is RetrievalState.MAIN_MENU
    assert len(saved.messages) == 3  # saving keeps it


# -- recording a greeting ---------------------------------------------------------------------


def test_greeting_recorded_accepted() -> None:
    menu = reviewing()
    assert show(menu.handle(Digit("2"), 0.0)) == ["play:RECORDED,vm-review"]
    assert show(menu.handle(Digit("1"), 0.0)) == ["SaveGreeting", f"play:vm-msgsaved,{OPTIONS}"]


def test_greeting_stops_on_silence_and_at_its_maximum() -> None:
    menu = recording_greeting()
    assert show(menu.handle(SilenceDetected(), 0.0)) == ["StopRecording:keep"]
    menu = recording_greeting()
    assert menu.handle(Timeout(), 79.0) == []
    assert show(menu.handle(Timeout(), 80.0)) == ["StopRecording:keep"]


def test_greeting_too_short() -> None:
    menu = recording_greeting()
    menu.handle(Digit("#"), 0.0)
    assert show(menu.handle(RecordingStopped(kept=False), 0.0)) == [f"play:vm-tooshort,{OPTIONS}"]
    assert state_of(menu) is RetrievalState.OPTIONS


def test_hanging_up_while_recording_or_reviewing_a_greeting_drops_it() -> None:
    menu = recording_greeting()
    assert show(menu.handle(HungUp(), 0.0)) == ["StopRecording:drop"]
    assert menu.finished
    stopping = recording_greeting()
    stopping.handle(Digit("#"), 0.0)
    assert show(stopping.handle(HungUp(), 0.0)) == ["DiscardGreeting"]
    assert show(reviewing().handle(HungUp(), 0.0)) == ["DiscardGreeting"]


@pytest.mark.parametrize(
    "make", [pin_menu, logged_in, lambda: at_message(1), lambda: after_message(1), in_options]
)
def test_hanging_up_elsewhere_just_ends(make: Callable[[], RetrievalMenu]) -> None:
    menu = make()
    assert menu.handle(HungUp(), 0.0) == []
    assert menu.finished
    assert menu.deadline is None


# -- unanswered menus ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "options"),
    [
        (logged_in, MAIN_NEW),
        (lambda: after_message(1), MESSAGE_OPTIONS_1),
        (in_options, OPTIONS),
        (reviewing, "vm-review"),
    ],
)
def test_unanswered_menus_repeat_then_say_goodbye(
    make: Callable[[], RetrievalMenu], options: str
) -> None:
    menu = make()
    state = menu.state
    now = 100.0
    for _ in range(2):
        menu.handle(PlayDone(), now)
        assert menu.deadline == pytest.approx(now + 8)
        assert menu.handle(Timeout(), now + 7) == []
        assert show(menu.handle(Timeout(), now + 8)) == [f"play:{options}"]
        assert state_of(menu) is state
        now += 20
    menu.handle(PlayDone(), now)
    goodbye = show(menu.handle(Timeout(), now + 8))
    if state is RetrievalState.GREETING_REVIEW:
        assert goodbye == ["DiscardGreeting", GOODBYE]
    else:
        assert goodbye == [GOODBYE]
    assert state_of(menu) is RetrievalState.GOODBYE


def test_a_key_resets_the_count_of_unanswered_prompts() -> None:
    menu = logged_in()
    for _ in range(5):
        menu.handle(PlayDone(), 0.0)
        menu.handle(Timeout(), 8.0)
        menu.handle(PlayDone(), 10.0)
        menu.handle(Timeout(), 18.0)
        menu.handle(Digit("*"), 19.0)  # help: a key, so the count starts again
        assert state_of(menu) is RetrievalState.MAIN_MENU


def test_stray_events_change_nothing() -> None:
    menu = logged_in()
    for event in (
        SilenceDetected(),
        RecordingStopped(kept=True),
        PinChecked(ok=True),
        MailboxLoaded(()),
        Timeout(),  # no deadline while the prompt plays
    ):
        assert menu.handle(event, 0.0) == []
    assert state_of(menu) is RetrievalState.MAIN_MENU
    assert len(menu.messages) == 3


# -- inputs and settings ------------------------------------------------------------------------


def test_digits_and_settings_are_checked() -> None:
    for bad in ("", "12", "x", "e"):
        with pytest.raises(ValueError, match="DTMF"):
            Digit(bad)
    with pytest.raises(ValueError, match="positive"):
        MenuSettings(input_timeout=0)
    with pytest.raises(ValueError, match="positive"):
        MenuSettings(digit_timeout=-1)
    with pytest.raises(ValueError, match="at least 1"):
        MenuSettings(pin_tries=0)


def test_actions_are_plain_values() -> None:
    assert Play((Prompt("vm-intro"), Beep())).prompts == ("vm-intro",)
    assert StartRecording(RecordingKind.MESSAGE) == StartRecording(RecordingKind.MESSAGE)
    assert {StopPlay(), StopPlay(), Hangup(), Login(), LoadMailbox()} == {
        StopPlay(),
        Hangup(),
        Login(),
        LoadMailbox(),
    }
    assert DiscardGreeting() != SaveGreeting()  # type: ignore[comparison-overlap]
