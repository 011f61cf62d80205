"""User-facing texts of the FACEIT layer in Russian and English: errors and progress stages.

Errors carry a stable ``code`` (the class's, e.g. ``bad_input``) and, when the FACEIT layer
knows more, a finer ``key`` (``bad_match_ref``, ``player_not_found`` …) with ``params``
(attached by :func:`with_key`). The bot shows ``user_message(exc, lang)``; the texts are plain
(no HTML) so the bot may escape them as it likes. :func:`stage_text` names a progress stage.
"""

from __future__ import annotations

from typing import Any, TypeVar

LANGS = ("en", "ru")
DEFAULT_LANG = "en"

E = TypeVar("E", bound=BaseException)

ERROR_TEXTS: dict[str, dict[str, str]] = {
    # by key (specific)
    "empty_input": {
        "en": "Send a FACEIT match room link or a match id.",
        "ru": "Пришлите ссылку на комнату матча FACEIT или id матча.",
    },
    "empty_player": {
        "en": "Send a FACEIT nickname or profile link.",
        "ru": "Пришлите никнейм FACEIT или ссылку на профиль.",
    },
    "input_too_long": {
        "en": "That message is too long to be a link or a nickname.",
        "ru": "Сообщение слишком длинное для ссылки или никнейма.",
    },
    "bad_match_ref": {
        "en": "That is not a FACEIT match. Send a room link like "
              "https://www.faceit.com/en/cs2/room/1-… or a match id 1-….",
        "ru": "Это не матч FACEIT. Пришлите ссылку на комнату вида "
              "https://www.faceit.com/ru/cs2/room/1-… или id матча 1-….",
    },
    "bad_player_ref": {
        "en": "That is not a FACEIT nickname or profile link. Nicknames have 2–16 Latin letters, "
              "digits, “-” or “_”.",
        "ru": "Это не никнейм FACEIT и не ссылка на профиль. Никнейм — от 2 до 16 латинских букв, "
              "цифр, «-» или «_».",
    },
    "unreadable_room_link": {
        "en": "I could not read the match id in that room link: was it cut short? Send the whole link, or the id 1-….",
        "ru": "Не удалось прочитать id матча в этой ссылке — может быть, она обрезана? Пришлите ссылку целиком "
              "или id 1-….",
    },
    "several_match_refs": {
        "en": "That message names {count} matches: send one, or put them all after /bulk.",
        "ru": "Матчей в сообщении: {count}. Пришлите один или все сразу после /bulk.",
    },
    "no_match_refs": {
        "en": "No FACEIT match links or ids found in that message.",
        "ru": "В сообщении не нашлось ссылок или id матчей FACEIT.",
    },
    "too_many_matches": {
        "en": "Too many matches: at most {limit} at once.",
        "ru": "Слишком много матчей: не больше {limit} за раз.",
    },
    "player_not_found": {
        "en": "No FACEIT CS2 player “{ref}”. Nicknames are case-sensitive.",
        "ru": "Игрок CS2 «{ref}» на FACEIT не найден. Регистр букв в никнейме важен.",
    },
    "player_no_cs2": {
        "en": "“{ref}” has a FACEIT account, but no CS2 profile on it: there are no CS2 matches to show "
              "or follow.",
        "ru": "У «{ref}» есть аккаунт FACEIT, но нет профиля CS2: нет матчей CS2, которые можно показать "
              "или отслеживать.",
    },
    "match_not_found": {
        "en": "FACEIT has no match “{ref}”.",
        "ru": "Матч «{ref}» на FACEIT не найден.",
    },
    "match_cancelled": {
        "en": "This match was cancelled: there is nothing to analyse.",
        "ru": "Матч отменён — анализировать нечего.",
    },
    "match_aborted": {
        "en": "This match was aborted: there is nothing to analyse.",
        "ru": "Матч прерван — анализировать нечего.",
    },
    "match_empty": {
        "en": "This match has no players yet: try again in a minute.",
        "ru": "В матче ещё нет игроков — попробуйте через минуту.",
    },
    "not_subscribed": {
        "en": "You don't follow “{ref}”. See /subscriptions.",
        "ru": "Вы не следите за «{ref}». Список — в /subscriptions.",
    },
    "too_many_subscriptions": {
        "en": "You can follow at most {limit} players. Unfollow someone first: /unsubscribe <nickname>.",
        "ru": "Можно следить не более чем за {limit} игроками. Сначала отпишитесь от кого-нибудь: "
              "/unsubscribe <никнейм>.",
    },
    "bad_cache_type": {
        "en": "Unknown cache type “{ref}”.",
        "ru": "Неизвестный тип кэша «{ref}».",
    },
    "bad_report_type": {
        "en": "Unknown report type “{ref}”: use weekly or monthly.",
        "ru": "Неизвестный тип отчёта «{ref}»: неделя или месяц (weekly или monthly).",
    },
    "bad_request": {
        "en": "FACEIT did not accept that request.",
        "ru": "FACEIT не принял этот запрос.",
    },
    # by code (generic)
    "bad_input": {"en": "That input is not valid.", "ru": "Неверный ввод."},
    "not_found": {"en": "FACEIT has no such player or match.", "ru": "На FACEIT нет такого игрока или матча."},
    "auth": {
        "en": "The bot cannot reach FACEIT right now (operators are notified).",
        "ru": "Бот сейчас не может обратиться к FACEIT (операторы уже знают).",
    },
    "rate_limited": {
        "en": "FACEIT is busy: your request will be retried shortly.",
        "ru": "FACEIT перегружен — запрос будет повторён чуть позже.",
    },
    "upstream": {
        "en": "FACEIT is not answering right now: your request will be retried.",
        "ru": "FACEIT сейчас не отвечает — запрос будет повторён.",
    },
    "storage": {
        "en": "The bot's storage is not answering right now: your request will be retried.",
        "ru": "Хранилище бота сейчас не отвечает — запрос будет повторён.",
    },
    "match_not_analysable": {
        "en": "This match cannot be analysed.",
        "ru": "Этот матч нельзя проанализировать.",
    },
    "permanent": {"en": "This request cannot be completed.", "ru": "Этот запрос нельзя выполнить."},
    "transient": {
        "en": "Something went wrong on the way to FACEIT: it will be retried.",
        "ru": "Что-то пошло не так при обращении к FACEIT — попробуем ещё раз.",
    },
    "error": {"en": "Something went wrong.", "ru": "Что-то пошло не так."},
    # One match of a /bulk list that FACEIT did not answer for: the list is not retried for it.
    "bulk_item_unavailable": {
        "en": "FACEIT did not answer for this match, so it was not analysed. Send it again in a few minutes.",
        "ru": "FACEIT не ответил по этому матчу, он не разобран. Пришлите его ещё раз через несколько минут.",
    },
}

#: A progress line's stage ("⏳ Match analysis: loading players 6/10 · 45%", "⏳ Анализ матча:
#: загружаю игроков 6/10 · 45%"): in both languages every stage is what the bot is doing, a verb
#: phrase (first person in Russian), short enough for a phone's line; a bare noun beside them
#: ("players", "chart") read as another kind of thing. "done" is the end state, not a stage.
STAGE_TEXTS: dict[str, dict[str, str]] = {
    "match": {"en": "loading the match", "ru": "загружаю матч"},
    "players": {"en": "loading players", "ru": "загружаю игроков"},
    "maps": {"en": "reading the maps", "ru": "разбираю карты"},
    "analysis": {"en": "analysing", "ru": "анализирую"},
    "matches": {"en": "loading matches", "ru": "загружаю матчи"},
    # a finished room: its one result is loaded instead of the lineup's players
    "result": {"en": "loading the result", "ru": "загружаю результат"},
    "profile": {"en": "loading the profile", "ru": "загружаю профиль"},
    "stats": {"en": "loading statistics", "ru": "загружаю статистику"},
    "chart": {"en": "drawing the chart", "ru": "рисую график"},
    "render": {"en": "preparing the message", "ru": "готовлю сообщение"},
    "subscriptions": {"en": "checking subscriptions", "ru": "проверяю подписки"},
    "done": {"en": "done", "ru": "готово"},
}


def with_key(exc: E, key: str, **params: Any) -> E:
    """Attach a translatable ``key`` and its ``params`` to an error and return it."""
    exc.key = key  # type: ignore[attr-defined]
    exc.params = {k: str(v)[:64] for k, v in params.items()}  # type: ignore[attr-defined]
    return exc


def _lang(lang: str | None) -> str:
    return lang if lang in LANGS else DEFAULT_LANG


def user_message(exc: BaseException, lang: str | None = DEFAULT_LANG) -> str:
    """The short message to show a user for an error of ours, in ``lang`` (``en``/``ru``)."""
    lang = _lang(lang)
    key = getattr(exc, "key", None)
    params = getattr(exc, "params", None) or {}
    for name in (key, getattr(exc, "code", None), "error"):
        if name and name in ERROR_TEXTS:
            try:
                return ERROR_TEXTS[name][lang].format(**params)
            except (KeyError, IndexError):
                continue
    return ERROR_TEXTS["error"][lang]


def error_payload(exc: BaseException) -> dict[str, Any]:
    """A JSON-able description of an error with its texts in both languages (for job records)."""
    return {
        "code": getattr(exc, "code", "error"),
        "key": getattr(exc, "key", None),
        "params": getattr(exc, "params", None) or {},
        "texts": {lang: user_message(exc, lang) for lang in LANGS},
    }


def stage_text(stage: str, lang: str | None = DEFAULT_LANG) -> str:
    """A progress stage code in words (unknown codes are shown as they are)."""
    return STAGE_TEXTS.get(stage, {}).get(_lang(lang), stage)


def plural(n: int, lang: str | None, forms: dict[str, tuple[str, ...]]) -> str:
    """The word for ``n`` things: ``forms`` gives English (one, many) and Russian (one, few,
    many: 1 матч, 2 матча, 5 матчей; 11–14 take "many", 21 "one")."""
    n = abs(int(n))
    if _lang(lang) == "ru":
        one, few, many = forms["ru"]
        if n % 10 == 1 and n % 100 != 11:
            return one
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return few
        return many
    one, many = forms["en"]
    return one if n == 1 else many


#: Forms of "match" for :func:`plural`.
MATCHES = {"en": ("match", "matches"), "ru": ("матч", "матча", "матчей")}
USERS = {"en": ("user", "users"), "ru": ("пользователь", "пользователя", "пользователей")}

