"""The bot's own words, in English and Russian (Telegram HTML: every parameter is escaped).

Errors of the FACEIT layer keep their texts in :mod:`faceit.i18n` (``user_message``); this
module holds what only the bot says: greetings, usage lines, queue and progress lines, limits,
outage and failure notes. :func:`t` fills a text; parameters are HTML-escaped there, so
handlers never build markup from user input themselves.
"""

from __future__ import annotations

import html
from typing import Any

LANGS = ("en", "ru")
DEFAULT_LANG = "en"

TEXTS: dict[str, dict[str, str]] = {
    "start": {
        "en": "👋 Hi, {name}! I analyse FACEIT CS2 matches and players.\n\n"
              "Paste a match room link to get a pre-game analysis, or see /help.",
        "ru": "👋 Привет, {name}! Я анализирую матчи и игроков FACEIT CS2.\n\n"
              "Пришлите ссылку на комнату матча — получите анализ перед игрой. Все команды: /help.",
    },
    "help": {
        "en": "<b>What I can do</b>\n"
              "/analyze &lt;room link or match id&gt; — pre-game analysis (or just paste the link)\n"
              "/player &lt;nickname or profile link&gt; — player report with a chart\n"
              "/bulk &lt;up to {bulk} links or ids&gt; — several matches at once\n"
              "/subscribe &lt;nickname&gt; — tell me when they finish a match\n"
              "/unsubscribe &lt;nickname&gt; — stop that\n"
              "/subscriptions — whom you follow\n"
              "/report weekly|monthly — your summary\n"
              "/status &lt;job id&gt; — where a job is\n"
              "/cancel &lt;job id&gt; — stop a job (or press Cancel under it)\n"
              "/lang ru|en — language\n"
              "/tz &lt;city or UTC offset&gt; — your time zone, for the weekly summary\n\n"
              "Limits: requests — at most {per_minute} a minute; jobs — at most {active} at a time.",
        "ru": "<b>Что я умею</b>\n"
              "/analyze &lt;ссылка на комнату или id матча&gt; — анализ перед игрой (или просто пришлите ссылку)\n"
              "/player &lt;никнейм или ссылка на профиль&gt; — отчёт по игроку с графиком\n"
              "/bulk &lt;до {bulk} ссылок или id&gt; — несколько матчей сразу\n"
              "/subscribe &lt;никнейм&gt; — сообщать, когда игрок доиграет матч\n"
              "/unsubscribe &lt;никнейм&gt; — перестать следить\n"
              "/subscriptions — за кем вы следите\n"
              "/report неделя|месяц — ваша сводка\n"
              "/status &lt;id задачи&gt; — статус задачи\n"
              "/cancel &lt;id задачи&gt; — остановить задачу (или кнопка «Отмена» под ней)\n"
              "/lang ru|en — язык\n"
              "/tz &lt;город или смещение от UTC&gt; — ваш часовой пояс, для сводки по понедельникам\n\n"
              "Ограничения: запросов в минуту — не больше {per_minute}, задач одновременно — не больше {active}.",
    },
    "help_admin": {
        "en": "<b>For operators</b>\n"
              "/queues — queues and health\n"
              "/alerts [hours] — recent alerts (the last 24 h by default)\n"
              "/requeue [job id | high | default | low | all] — send failed jobs again (all of them by default)",
        "ru": "<b>Для операторов</b>\n"
              "/queues — очереди и здоровье системы\n"
              "/alerts [часы] — недавние оповещения (по умолчанию за 24 ч)\n"
              "/requeue [id задачи | high | default | low | all] — отправить упавшие задачи снова (по умолчанию все)",
    },
    # usage lines (a command without its argument, or with a bad one)
    "usage_analyze": {
        "en": "Send a match room link or id: /analyze https://www.faceit.com/en/cs2/room/1-…",
        "ru": "Пришлите ссылку на комнату или id матча: /analyze https://www.faceit.com/ru/cs2/room/1-…",
    },
    "usage_player": {
        "en": "Send a nickname or profile link: /player s1mple",
        "ru": "Пришлите никнейм или ссылку на профиль: /player s1mple",
    },
    "usage_bulk": {
        "en": "Send up to {limit} room links or match ids after /bulk, separated by spaces or new lines.",
        "ru": "Пришлите после /bulk до {limit} ссылок или id матчей через пробел или с новой строки.",
    },
    "bulk_skipped": {
        "en": "⚠️ Not analysed ({count}):\n{items}",
        "ru": "⚠️ Не проанализировано ({count}):\n{items}",
    },
    "bulk_none_readable": {
        "en": "❌ No FACEIT match links or ids I could read ({count} not analysed):\n{items}",
        "ru": "❌ Не удалось прочитать ни одной ссылки или id матча FACEIT (не разобрано: {count}):\n{items}",
    },
    # the kinds of what a /bulk list holds that is not analysed (faceit.links.UnreadItem)
    "bulk_unread_room_link": {
        "en": "Room links whose match id I could not read — cut short? ({count}):",
        "ru": "Ссылки на комнаты с нечитаемым id матча — может быть, обрезаны? ({count}):",
    },
    "bulk_unread_cut_id": {
        "en": "Match ids that look cut short or mistyped ({count}):",
        "ru": "Id матчей — похоже, обрезаны или с опечаткой ({count}):",
    },
    "bulk_unread_not_a_match": {
        "en": "Not a match link or id ({count}):",
        "ru": "Не ссылки на матчи и не id матчей ({count}):",
    },
    "bulk_unread_more": {"en": "… and {count} more", "ru": "… и ещё {count}"},
    "usage_subscribe": {"en": "Send a nickname: /subscribe s1mple", "ru": "Пришлите никнейм: /subscribe s1mple"},
    "usage_unsubscribe": {"en": "Send a nickname: /unsubscribe s1mple",
                          "ru": "Пришлите никнейм: /unsubscribe s1mple"},
    "usage_status": {"en": "Send a job id (its first 8 characters are enough): /status 3f2a9c1e",
                     "ru": "Пришлите id задачи (хватит первых 8 символов): /status 3f2a9c1e"},
    "usage_cancel": {"en": "Send a job id (its first 8 characters are enough): /cancel 3f2a9c1e",
                     "ru": "Пришлите id задачи (хватит первых 8 символов): /cancel 3f2a9c1e"},
    "not_a_job_id": {
        "en": "That is not a job id: send the id from the job's message, or its first 8 characters "
              "(like <code>3f2a9c1e</code>).",
        "ru": "Это не id задачи: пришлите id из сообщения о задаче или его первые 8 символов "
              "(например, <code>3f2a9c1e</code>).",
    },
    "usage_report": {"en": "Which report? /report weekly or /report monthly",
                     "ru": "Какой отчёт? /report неделя или /report месяц"},
    "usage_lang": {"en": "Choose a language: /lang en or /lang ru", "ru": "Выберите язык: /lang ru или /lang en"},
    "lang_set": {"en": "Language: English.", "ru": "Язык: русский."},
    "usage_tz": {
        "en": "I don't know that time zone. Send a city or an offset from UTC: /tz Moscow, /tz Europe/Berlin, /tz +3",
        "ru": "Не знаю такого часового пояса. Пришлите город или смещение от UTC: /tz Москва, /tz Europe/Berlin, /tz +3",
    },
    "tz_current": {
        "en": "Your time zone: {zone}. The weekly summary of the players you follow comes on Mondays at 09:00 your time "
              "(when there is something to tell).\n"
              "To change it: /tz Moscow, /tz Europe/Berlin or /tz +3",
        "ru": "Ваш часовой пояс: {zone}. Еженедельная сводка по игрокам, за которыми вы следите, приходит по понедельникам в 09:00 "
              "по вашему времени (если есть о чём рассказать).\n"
              "Изменить: /tz Москва, /tz Europe/Berlin или /tz +3",
    },
    "tz_unset": {
        "en": "No time zone chosen: the weekly summary of the players you follow comes on Mondays at 09:00 UTC "
              "(when there is something to tell).\n"
              "Choose yours: /tz Moscow, /tz Europe/Berlin or /tz +3",
        "ru": "Часовой пояс не выбран: еженедельная сводка по игрокам, за которыми вы следите, приходит по понедельникам "
              "в 09:00 UTC (если есть о чём рассказать).\n"
              "Выберите свой: /tz Москва, /tz Europe/Berlin или /tz +3",
    },
    "tz_set": {
        "en": "Time zone: {zone}. The weekly summary of the players you follow will come on Mondays at 09:00 your time "
              "(when there is something to tell).",
        "ru": "Часовой пояс: {zone}. Еженедельная сводка по игрокам, за которыми вы следите, будет приходить по понедельникам "
              "в 09:00 по вашему времени (если есть о чём рассказать).",
    },
    "unknown_command": {
        "en": "I don't know that command. /help lists what I can do.",
        "ru": "Такой команды нет. Что я умею — в /help.",
    },
    "anonymous_sender": {
        "en": "I answer people, not chats: send this as yourself, not anonymously or on behalf of a channel.",
        "ru": "Я отвечаю людям, а не чатам: отправьте это от своего имени, а не анонимно или от имени канала.",
    },
    "not_understood": {
        "en": "Send me a FACEIT match room link, or /player &lt;nickname&gt; for a player report. More in /help.",
        "ru": "Пришлите ссылку на комнату матча FACEIT, а для отчёта по игроку — /player &lt;никнейм&gt;. "
              "Остальное — в /help.",
    },
    # jobs
    "kind_match_analysis": {"en": "Match analysis", "ru": "Анализ матча"},
    "kind_player_report": {"en": "Player report", "ru": "Отчёт по игроку"},
    "kind_bulk_analysis": {"en": "Bulk analysis", "ru": "Анализ списка матчей"},
    "kind_player_lookup": {"en": "Player lookup", "ru": "Поиск игрока"},
    # /subscribe's job: a player lookup whose delivery makes the subscription (bot.views.kind_name)
    "kind_follow": {"en": "Follow", "ru": "Подписка"},
    # /report's job: called a summary as the help and its title call it ("Weekly summary")
    "kind_analytics_report": {"en": "Summary", "ru": "Сводка"},
    "kind_job": {"en": "Job", "ru": "Задача"},
    "queued": {
        "en": "⏳ {kind}: queued, place {position}.\nJob <code>{job_id}</code>",
        "ru": "⏳ {kind}: в очереди, место {position}.\nЗадача <code>{job_id}</code>",
    },
    "joined": {
        "en": "🤝 {kind}: someone else asked for the same just before you — you joined their job "
              "and will get the same result.\nJob <code>{job_id}</code>",
        "ru": "🤝 {kind}: то же самое только что запросил другой пользователь — вы присоединились "
              "и получите тот же результат.\nЗадача <code>{job_id}</code>",
    },
    "asked_again": {
        "en": "🔁 {kind}: you already asked for this — it is in progress; its progress and result "
              "come in the message that answered you first.\nJob <code>{job_id}</code>",
        "ru": "🔁 {kind}: вы уже запросили это — задача выполняется; ход и результат придут в "
              "сообщение, которым я ответил в первый раз.\nЗадача <code>{job_id}</code>",
    },
    "asked_again_elsewhere": {
        "en": "🔁 {kind}: you already asked for this in {where} — it is in progress; its progress and "
              "result come there.\nJob <code>{job_id}</code>",
        "ru": "🔁 {kind}: вы уже запросили это в {where} — задача выполняется; ход и результат придут "
              "туда.\nЗадача <code>{job_id}</code>",
    },
    "asked_again_elsewhere_done": {
        "en": "🔁 {kind}: you asked for this a moment ago in {where} — the result is there.\n"
              "Job <code>{job_id}</code>",
        "ru": "🔁 {kind}: вы только что запрашивали это в {where} — результат там.\n"
              "Задача <code>{job_id}</code>",
    },
    "where_private_chat": {"en": "our private chat", "ru": "личном чате со мной"},
    "where_other_chat": {"en": "another chat", "ru": "другом чате"},
    "asked_again_done": {
        "en": "🔁 {kind}: you asked for this a moment ago — the result is in the message that answered "
              "you first.\nJob <code>{job_id}</code>",
        "ru": "🔁 {kind}: вы только что запрашивали это — результат в сообщении, которым я ответил "
              "в первый раз.\nЗадача <code>{job_id}</code>",
    },
    "shown_here_done": {
        "en": "👆 {kind}: already answered in this chat a moment ago — see the message I am replying to."
              "\nJob <code>{job_id}</code>",
        "ru": "👆 {kind}: я только что ответил на это здесь — смотрите сообщение, на которое я "
              "отвечаю.\nЗадача <code>{job_id}</code>",
    },
    "shown_above_done": {
        "en": "👆 {kind}: already answered in this chat a moment ago — see my answer just above."
              "\nJob <code>{job_id}</code>",
        "ru": "👆 {kind}: я только что ответил на это здесь — смотрите мой ответ чуть выше."
              "\nЗадача <code>{job_id}</code>",
    },
    "shown_above": {
        "en": "👆 {kind}: already in progress in this chat — its progress and result come in my answer "
              "just above.\nJob <code>{job_id}</code>",
        "ru": "👆 {kind}: уже выполняется в этом чате — ход и результат будут в моём ответе чуть выше."
              "\nЗадача <code>{job_id}</code>",
    },
    "progress_retrying": {
        "en": "⏳ {kind}: {reason} Trying again in {seconds} s (attempt {attempt} of {attempts}).\n"
              "Job <code>{job_id}</code>",
        "ru": "⏳ {kind}: {reason} Повторю через {seconds} с (попытка {attempt} из {attempts}).\n"
              "Задача <code>{job_id}</code>",
    },
    "retry_reason_upstream": {"en": "FACEIT is not answering.", "ru": "FACEIT не отвечает."},
    "retry_reason_rate_limited": {"en": "FACEIT is overloaded.", "ru": "FACEIT перегружен."},
    "retry_reason_storage": {"en": "The bot's storage is not answering.", "ru": "Хранилище бота не отвечает."},
    "retry_reason_other": {"en": "Something went wrong.", "ru": "Что-то пошло не так."},
    "shown_here": {
        "en": "👆 {kind}: already in progress in this chat — its progress and result come in the "
              "message I am replying to.\nJob <code>{job_id}</code>",
        "ru": "👆 {kind}: уже выполняется в этом чате — ход и результат придут в сообщение, на "
              "которое я отвечаю.\nЗадача <code>{job_id}</code>",
    },
    "progress": {
        "en": "⏳ {kind}: {stage}{count} · {percent}%\nJob <code>{job_id}</code>",
        "ru": "⏳ {kind}: {stage}{count} · {percent}%\nЗадача <code>{job_id}</code>",
    },
    "cancel_button": {"en": "✖ Cancel", "ru": "✖ Отмена"},
    "canceled": {"en": "✖ {kind} cancelled.\nJob <code>{job_id}</code>",
                 "ru": "✖ {kind}: отменено.\nЗадача <code>{job_id}</code>"},
    "canceled_by_operator": {"en": "✖ {kind} stopped by the bot's operator.\nJob <code>{job_id}</code>",
                             "ru": "✖ {kind}: остановлено оператором бота.\nЗадача <code>{job_id}</code>"},
    "canceling": {"en": "Stopping job <code>{job_id}</code>…", "ru": "Останавливаю задачу <code>{job_id}</code>…"},
    "cancel_short": {"en": "Cancelled", "ru": "Отменено"},
    "canceling_short": {"en": "Stopping…", "ru": "Останавливаю…"},
    "canceling_already": {"en": "Job <code>{job_id}</code> is already stopping.",
                          "ru": "Задача <code>{job_id}</code> уже останавливается."},
    "canceling_already_short": {"en": "Already stopping…", "ru": "Уже останавливаю…"},
    "not_your_job": {"en": "Only whoever asked for job <code>{job_id}</code> can cancel it.",
                     "ru": "Отменить задачу <code>{job_id}</code> может только тот, кто её запросил."},
    "cancel_too_late": {"en": "Job <code>{job_id}</code> has already ended (status: {status}).",
                        "ru": "Задача <code>{job_id}</code> уже завершена (статус: {status})."},
    "cancel_left": {
        "en": "✖ {kind}: cancelled for you; the others who asked for it still get it.\nJob <code>{job_id}</code>",
        "ru": "✖ {kind}: отменено для вас; остальные, кто это запросил, всё равно получат результат.\n"
              "Задача <code>{job_id}</code>",
    },
    "cancel_shared": {
        "en": "Other people wait for job <code>{job_id}</code> too, so it keeps running.",
        "ru": "Задачу <code>{job_id}</code> ждут и другие пользователи, поэтому она продолжается.",
    },
    "unknown_job": {"en": "You have no job <code>{job_id}</code>.", "ru": "У вас нет задачи <code>{job_id}</code>."},
    "no_job_prefix": {"en": "You have no job starting with <code>{prefix}</code>.",
                      "ru": "У вас нет задачи, id которой начинается с <code>{prefix}</code>."},
    "no_job_prefix_any": {"en": "There is no job starting with <code>{prefix}</code>.",
                          "ru": "Нет задачи, id которой начинается с <code>{prefix}</code>."},
    "ambiguous_job_prefix": {"en": "Several jobs ({count}) start with <code>{prefix}</code>: send more of the id.",
                             "ru": "С <code>{prefix}</code> начинаются id нескольких задач ({count}): "
                                   "пришлите больше символов id."},
    "no_such_job": {"en": "There is no job <code>{job_id}</code>: it never existed or its record has expired.",
                    "ru": "Задачи <code>{job_id}</code> нет: её не было или срок хранения её записи истёк."},
    "status_line": {"en": "{kind}: {status}{progress}\nJob <code>{job_id}</code>",
                    "ru": "{kind} — статус: {status}{progress}\nЗадача <code>{job_id}</code>"},
    "status_queued": {"en": "queued", "ru": "в очереди"},
    "status_started": {"en": "running", "ru": "выполняется"},
    "status_retrying": {"en": "waiting to retry", "ru": "ждёт повтора"},
    # /status of a job between attempts: its retry notice's reason, then these
    "status_retry_in": {"en": "Trying again in {seconds} s", "ru": "Повторю через {seconds} с"},
    "status_retry_now": {"en": "Trying again as soon as a worker is free", "ru": "Повторю, как только освободится обработчик"},
    "status_retry_attempt": {"en": "(attempt {attempt} of {attempts}).", "ru": "(попытка {attempt} из {attempts})."},
    "status_succeeded": {"en": "done", "ru": "готово"},
    "status_failed": {"en": "failed", "ru": "ошибка"},
    "status_canceled": {"en": "cancelled", "ru": "отменено"},
    "status_left": {"en": "cancelled for you (for the others: {others})", "ru": "отменено для вас (для остальных: {others})"},
    "done": {"en": "✅ Done.", "ru": "✅ Готово."},
    # failures: a headline, then the reason and the advice, each a full sentence with a capital
    # (the FACEIT layer's reasons, faceit.i18n, are written so too)
    "failed": {"en": "❌ {kind} failed. {reason}\n{advice}", "ru": "❌ {kind} — ошибка. {reason}\n{advice}"},
    "advice_retry": {"en": "Send it again in a few minutes.",
                     "ru": "Попробуйте ещё раз через несколько минут."},
    "advice_no_retry": {"en": "Trying again will not help.", "ru": "Повторный запрос не поможет."},
    "advice_fix_input": {"en": "Check what you sent and try again.",
                         "ru": "Проверьте, что вы прислали, и попробуйте снова."},
    "reason_upstream": {"en": "FACEIT did not answer.", "ru": "FACEIT не ответил."},
    "reason_rate_limited": {"en": "FACEIT is overloaded.", "ru": "FACEIT перегружен."},
    "reason_storage": {"en": "The bot's storage did not answer.", "ru": "Хранилище бота не ответило."},
    "reason_time_limit": {"en": "The job took too long and was stopped.",
                          "ru": "Задача выполнялась слишком долго и была остановлена."},
    "reason_crash_loop": {"en": "The job kept crashing; the operators are notified.",
                          "ru": "Задача падала снова и снова; операторы уже знают."},
    "reason_error": {"en": "Something broke on our side; the operators are notified.",
                     "ru": "Что-то сломалось у нас; операторы уже знают."},
    # limits and outages
    "rate_limited": {
        "en": "Too many requests: at most {limit} a minute. Try again in {seconds} s.",
        "ru": "Слишком много запросов: не больше {limit} в минуту. Попробуйте через {seconds} с.",
    },
    "too_many_active": {
        "en": "Jobs in progress: {count} of the {limit} you may have. Wait for one to finish or /cancel it.",
        "ru": "Задач в работе: {count} из {limit} возможных. Дождитесь окончания одной или отмените её (/cancel).",
    },
    # a flooding user, once per episode (bot.middlewares.throttle); plain text: also a button's alert
    "throttled": {
        "en": "⏳ Too many messages at once — I skipped some. Send them again in {seconds} s.",
        "ru": "⏳ Слишком много сообщений сразу — часть я пропустил. Отправьте их ещё раз через {seconds} с.",
    },
    "try_again_shortly": {
        "en": "⚠️ The bot is briefly unavailable. Please try again in a few seconds.",
        "ru": "⚠️ Бот ненадолго недоступен. Попробуйте ещё раз через несколько секунд.",
    },
    "internal_error": {
        "en": "⚠️ Something went wrong on our side. Please try again later.",
        "ru": "⚠️ У нас что-то пошло не так. Попробуйте позже.",
    },
    # subscriptions
    "subscribed": {
        "en": "🔔 You follow <b>{nickname}</b> now: I'll tell you when they finish a match.",
        "ru": "🔔 Вы следите за <b>{nickname}</b>: я сообщу, когда игрок доиграет матч.",
    },
    "subscribed_in_group": {
        "en": "The notices come in our private chat: if you have not started me there yet, open it and press "
              "Start (or send /start), or Telegram will not let me write to you.",
        "ru": "Уведомления приходят в личный чат со мной: если вы ещё не запускали меня там, откройте его и "
              "нажмите «Запустить» (или отправьте /start), иначе Telegram не даст мне вам написать.",
    },
    # a player lookup's answer: "👤 nick · Elo 1051 · level 5" (bot.delivery)
    "lookup_elo": {"en": "Elo {value}", "ru": "Elo {value}"},
    "lookup_level": {"en": "level {value}", "ru": "уровень {value}"},
    "already_subscribed": {"en": "You already follow <b>{nickname}</b>.", "ru": "Вы уже следите за <b>{nickname}</b>."},
    "unsubscribed": {"en": "🔕 You no longer follow <b>{nickname}</b>.",
                     "ru": "🔕 Вы больше не следите за <b>{nickname}</b>."},
    "subscriptions": {"en": "🔔 <b>Players you follow</b> ({count}):\n{items}",
                      "ru": "🔔 <b>Игроки, за которыми вы следите</b> ({count}):\n{items}"},
    "no_subscriptions": {"en": "You follow nobody yet: /subscribe &lt;nickname&gt;.",
                         "ru": "Вы пока ни за кем не следите: /subscribe &lt;никнейм&gt;."},
    # admin
    "queues_title": {"en": "<b>Queues</b>", "ru": "<b>Очереди</b>"},
    "queue_line": {
        "en": "{name}: waiting {waiting} · delayed {delayed} · running {running} · dead {dead} · workers {workers}",
        "ru": "{name}: ждут {waiting} · отложены {delayed} · в работе {running} · мёртвые {dead} · воркеры {workers}",
    },
    "health_line": {"en": "Health: {score}/100", "ru": "Здоровье: {score}/100"},
    "alerts_title": {"en": "<b>Alerts, last {hours} h</b> ({count}, times in {zone})",
                     "ru": "<b>Оповещения за {hours} ч</b> ({count}, время {zone})"},
    "no_alerts": {"en": "No alerts in the last {hours} h.", "ru": "Оповещений за {hours} ч нет."},
    "requeued": {"en": "Requeued: {count}.", "ru": "Повторно поставлено в очередь: {count}."},
    "requeue_skipped": {"en": "Left alone: {count} refused for their request (bad input, not found); "
                              "/requeue &lt;job id&gt; sends one anyway.",
                        "ru": "Не тронуто: {count} — отказ по самому запросу (ошибка ввода, не найдено); "
                              "/requeue &lt;id задачи&gt; повторит любую."},
    "requeue_superseded": {"en": "Left alone: {count} asked for again since, and answered; "
                                 "/requeue &lt;job id&gt; sends one anyway.",
                           "ru": "Не тронуто: {count} — пользователи уже запросили это снова и получили ответ; "
                                 "/requeue &lt;id задачи&gt; повторит любую."},
    "not_requeued": {"en": "Job <code>{job_id}</code> is {status}: only a failed or cancelled job can be requeued.",
                     "ru": "Задача <code>{job_id}</code> — статус «{status}»: повторить можно только упавшую "
                           "или отменённую."},
    "admin_private_only": {"en": "Operator commands answer in a private chat with me only: queue health and "
                                 "alerts are not for the whole group.",
                           "ru": "Команды оператора отвечают только в личном чате со мной: состояние очередей "
                                 "и оповещения — не для всей группы."},
    "usage_alerts": {"en": "Usage: /alerts [hours], at most {max} (24 by default)",
                     "ru": "Использование: /alerts [часы], не больше {max} (по умолчанию 24)"},
}


def normalize_lang(code: str | None) -> str:
    """A Telegram ``language_code`` (``ru``, ``ru-RU``, ``en-GB`` …) → ``ru`` or ``en``."""
    if code and code.lower().split("-")[0] == "ru":
        return "ru"
    return DEFAULT_LANG


def user_language(chosen: str | None, seen: str | None) -> str:
    """A user's language outside a request of theirs (notifications, reports, admin alerts): the
    one chosen with ``/lang``, else the one last seen (a subscription's, an admin command's)."""
    return normalize_lang(chosen or seen)


def t(key: str, lang: str, **params: Any) -> str:
    """The text ``key`` in ``lang`` with ``params`` HTML-escaped into it.

    A parameter wrapped in :class:`Markup` is inserted as is (it is markup we built).
    """
    entry = TEXTS[key]
    template = entry.get(lang) or entry[DEFAULT_LANG]
    safe = {name: value if isinstance(value, Markup) else html.escape(str(value), quote=False)
            for name, value in params.items()}
    return template.format(**safe)


class Markup(str):
    """Text that is already Telegram HTML (built by us), so :func:`t` must not escape it."""


def escape(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=False)
