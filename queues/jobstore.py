"""The Redis schema of job records, and every change to it.

One hash per job, ``<prefix>job:<id>`` (the id is the Dramatiq message id), with scalar fields
as text and structured fields as JSON:

========================  =================================================================
field                     meaning
========================  =================================================================
id, actor, queue          what runs where
status                    queued → started → retrying → … → succeeded | failed | canceled
args, kwargs              JSON, secret fields already redacted
options                   JSON: the enqueue options we need to requeue (retry, time limit)
requesters                JSON list of {user_id, chat_id, message_id, lang[, thread_id][, reply_to]}
watchers                  JSON list of user ids a group's message already showed the job to
attempts, deliveries      body starts, and message deliveries (kills included)
enqueued_at, started_at,  epoch seconds (``first_started_at`` for wait time)
finished_at, retry_at
progress                  JSON {percent, stage, done, total, at}
result / error            JSON; error = {type, code, message, retryable, traceback}
timeline                  JSON list of attempts {attempt, worker, started_at, finished_at,
                          outcome, error}
coalesce_key              set while a coalescable job is in flight, and for REPEAT_WINDOW_SECONDS
                          after it succeeded (repeats of its request are pointed at its answer)
cancel_requested          "1" once a cancel was asked for a running job
write_token, write_reply  the token of the last start, finish or reset, and its answer
                          (that write sent again after its reply was lost answers the same)
requeued_at               when the last requeue reset the record
========================  =================================================================

Succeeded records, and those canceled while they ran, expire after ``QUEUE_RESULT_TTL``; failed
ones, and those canceled before they ran (their message may still wait in a queue), after
``QUEUE_FAILURE_TTL``; records in flight keep the failure TTL, refreshed on every change. A
record whose result is still owed (its delivery failed: Telegram unreachable) is kept at least
:data:`OWED_TTL` from that failure (:data:`KEEP_OWED`), so the scheduler's redelivery still finds it.
Sorted-set indexes (by enqueue time) list jobs by status, queue, actor and user; they are
capped at ``QUEUE_INDEX_LIMIT`` ids and pruned of expired ids when read.

Each transition is one Lua script, so a record and its indexes always change together and a
stale attempt (a worker that lost its job to a re-delivery) writes nothing. The finish script
also counts outcomes per minute, keeps wait/run samples and duration histograms for the
monitor and ``/metrics``: one round trip per transition, nothing else on the hot path.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from faceit.errors import REQUEST_ERROR_CODES
from queues.direct_scripts import direct_scripts_for
from queues.jobids import whole_job_id

FINAL_STATUSES = ("succeeded", "failed", "canceled")
ACTIVE_STATUSES = ("queued", "started", "retrying")
ALL_STATUSES = ACTIVE_STATUSES + FINAL_STATUSES
HISTOGRAM_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600)
SAMPLES_KEPT = 1000
#: Seconds a succeeded job still answers a repeat of its request (see ``create_job``).
REPEAT_WINDOW_SECONDS = 60
TIMELINE_KEPT = 20
#: How long after it was enqueued a delivery that failed for want of Telegram is still sent again
#: by the scheduler's redelivery (``scheduler.redeliver_failed``, which reads it from here).
REDELIVERY_WINDOW = 3 * 3600.0
#: Seconds a record whose delivery failed is kept at least, from that failure (:data:`KEEP_OWED`):
#: the redelivery window (a delivery fails after it was enqueued, so this covers the window's
#: end), and an hour to spare for the last redelivery's own retries (about ten minutes) and the
#: scheduler's period. Gone before, the result still owed to its users was lost (the succeeded
#: record lives ``QUEUE_RESULT_TTL``, an hour by default: a longer outage outlived it).
OWED_TTL = int(REDELIVERY_WINDOW) + 3600

_JSON_FIELDS = ("args", "kwargs", "options", "requesters", "watchers", "progress", "result", "error", "timeline")
_FLOAT_FIELDS = ("enqueued_at", "first_started_at", "started_at", "finished_at", "retry_at")
_INT_FIELDS = ("attempts", "deliveries", "max_retries")

# Shared Lua helpers: index moves and JSON arrays that stay arrays when empty.
_LUA_COMMON = """
-- Indexes are capped at ``limit`` ids. Only per-user indexes (one key per user) get a TTL; the
-- status/queue/actor indexes are a fixed handful of keys, so refreshing theirs on every write
-- would be work for nothing (ttl = 0).
local function index_add(key, score, id, limit, ttl)
  redis.call("ZADD", key, score, id)
  if redis.call("ZCARD", key) > limit then
    redis.call("ZREMRANGEBYRANK", key, 0, -(limit + 1))
  end
  if ttl > 0 then redis.call("EXPIRE", key, ttl) end
end
-- cjson writes numbers with 14 significant digits, and Telegram ids have up to 52 bits (16
-- digits): integers are written by hand, exactly. For arrays of flat objects (requesters,
-- timeline); anything nested inside an element is left to cjson.
local function encode_exact(v)
  if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2^53 then
    return string.format("%d", v)
  end
  return cjson.encode(v)
end
local function encode_array(t)
  local items = {}
  for i, element in ipairs(t) do
    if type(element) == "table" then
      local parts = {}
      for k, v in pairs(element) do parts[#parts + 1] = cjson.encode(tostring(k)) .. ":" .. encode_exact(v) end
      items[i] = "{" .. table.concat(parts, ",") .. "}"
    else
      items[i] = encode_exact(element)
    end
  end
  return "[" .. table.concat(items, ",") .. "]"
end
local function decode_array(s)
  if not s or s == "" then return {} end
  return cjson.decode(s)
end
-- One outcome in the per-minute counts (per queue and per actor) and the all-time totals that
-- the monitor, the dashboard and /metrics read. A minute's counters get their TTL on their
-- first increment only.
local function count_outcome(prefix, queue, actor, outcome, now, stats_ttl, refused)
  local minute = string.format("%d", math.floor(now / 60))
  local sk = prefix .. "stats:" .. queue .. ":" .. minute
  if redis.call("HINCRBY", sk, outcome, 1) == 1 then redis.call("EXPIRE", sk, stats_ttl) end
  local ak = prefix .. "stats:actor:" .. actor .. ":" .. minute
  if redis.call("HINCRBY", ak, outcome, 1) == 1 then redis.call("EXPIRE", ak, stats_ttl) end
  if refused then
    redis.call("HINCRBY", sk, "refused", 1)
    redis.call("HINCRBY", ak, "refused", 1)
    redis.call("HINCRBY", prefix .. "totals", actor .. "|refused", 1)
  end
  redis.call("HINCRBY", prefix .. "totals", actor .. "|" .. outcome, 1)
end
-- 1 when a delivery of the job could tell anyone: it has requesters, or its result carries
-- notifications (a monitoring run's); else 0 (a probe, a job an operator sent).
local function someone_waits(jk)
  local r = redis.call("HMGET", jk, "requesters", "result")
  if r[1] and r[1] ~= "" and r[1] ~= "[]" then return 1 end
  if r[2] and r[2] ~= "" then
    local ok, v = pcall(cjson.decode, r[2])
    if ok and type(v) == "table" and type(v["notifications"]) == "table" and next(v["notifications"]) then
      return 1
    end
  end
  return 0
end
-- A write whose reply was lost (a dropped connection, a failover, a Redis stalled past the socket
-- timeout) may have run; its caller sends it again with the same ``token``. ``replayed`` gives
-- back what the first answered, kept in the record beside the token by ``answer``; judged anew,
-- the write would meet its own doing ("stale", a lost worker, "already canceled"). No token: nil.
local function replayed(jk, token)
  if not token or token == "" then return nil end
  local kept = redis.call("HMGET", jk, "write_token", "write_reply")
  if kept[1] ~= token or not kept[2] then return nil end
  return cjson.decode(kept[2])
end
local function answer(jk, token, reply)
  if token and token ~= "" then redis.call("HSET", jk, "write_token", token, "write_reply", cjson.encode(reply)) end
  return reply
end
-- Lets a job's coalescing subject go, if it still names the job.
local function release_subject(ckey, id)
  if ckey and redis.call("GET", ckey) == id then redis.call("DEL", ckey) end
end
-- A job ends as ``to`` (canceled, failed) without a run's outcome: it moves from the index of
-- status ``from`` to that of ``to``, its record says ``to`` and ``finished_at`` (``at``: the
-- caller's epoch seconds as it got them, a numeric string, kept exact) with ``fields`` (name,
-- value, ...), expires in ``ttl`` seconds, and the outcome is counted. Its subject is the
-- caller's to let go (a cancel lets it go earlier).
local function end_without_run(prefix, id, jk, from, to, score, limit, at, ttl, queue, actor, stats_ttl, fields)
  redis.call("ZREM", prefix .. "jobs:status:" .. from, id)
  index_add(prefix .. "jobs:status:" .. to, score, id, limit, 0)
  redis.call("HSET", jk, "status", to, "finished_at", at, unpack(fields))
  redis.call("EXPIRE", jk, ttl)
  count_outcome(prefix, queue or "", actor or "", to, tonumber(at), stats_ttl, false)
end
"""

# KEYS: none (all keys derive from the prefix, built here and only here).
# ARGV: prefix, id, now, ttl, limit, coalesce_key|"", requester_json|"", n_fields, field, value, ...
# create_job(A): A = {prefix, id, now, ttl, limit, coalesce key, requester JSON, n, field, value, …}
# (the ARGV of JobStore.create). Returns {id, "new"}, or {existing id, its status} when the
# request joined an in-flight job of the same coalesce subject; {existing id, its status,
# "again", the chat of that message} when this user had already asked for it and a message of
# theirs shows it; {existing
# id, its status, "here", message id} when, in a group, a message in that chat (and forum topic)
# already shows it (0: being sent): the requester is then a watcher, not a requester (the group
# gets one copy of the result, not one per member). A job that succeeded within
# REPEAT_WINDOW_SECONDS still answers "again" and "here" (its status "succeeded"); any other
# request for its subject starts a new job. Functions, so the bot's one-round-trip job start
# (bot/jobstart.py) and its limits (bot/limits.py) run the very same code; answered_already(A)
# tells, without writing, whether create_job(A) would answer "again" or "here".
CREATE_JOB_LUA = _LUA_COMMON + """
local function given(value) return value ~= nil and value ~= cjson.null end
local function same(a, b)
  if given(a) and given(b) then return encode_exact(a) == encode_exact(b) end
  return not given(a) and not given(b)
end
-- How the requesters ``list`` already answer requester ``r``: {"again", the chat of their first
-- answer} (they asked already: their first answer shows it, or is being sent; a link sent twice
-- at once is two updates served together), or {"here", message id} (see above; 0 when the group's answer is being sent and its
-- id is not recorded yet), or nil.
local function shown_to(list, r)
  for _, existing in ipairs(list) do
    if same(existing["user_id"], r["user_id"]) then
      return {"again", given(existing["chat_id"]) and encode_exact(existing["chat_id"]) or ""}
    end
  end
  if given(r["chat_id"]) and tonumber(r["chat_id"]) < 0 then
    local pending = false
    for _, existing in ipairs(list) do
      if same(existing["chat_id"], r["chat_id"]) and same(existing["thread_id"], r["thread_id"]) then
        if given(existing["message_id"]) then return {"here", existing["message_id"]} end
        pending = true
      end
    end
    if pending then return {"here", 0} end
  end
  return nil
end
-- The job of a request's coalesce subject: in flight, or succeeded within the repeat window
-- (its key expires then). Its id, status and key; nil when there is none (a cancel lets the
-- key go: a job on its way out is joined by nobody).
local function current_job(A)
  if A[6] == "" then return nil end
  local existing = redis.call("GET", A[6])
  if not existing then return nil end
  local jk = A[1] .. "job:" .. existing
  local st = redis.call("HGET", jk, "status")
  if st == "queued" or st == "started" or st == "retrying" or st == "succeeded" then return existing, st, jk end
  return nil
end
local function answered_already(A)
  local existing, _, jk = current_job(A)
  if not existing or A[7] == "" then return nil end
  return (shown_to(decode_array(redis.call("HGET", jk, "requesters")), cjson.decode(A[7])))
end
local function create_job(A)
  local prefix, id, now = A[1], A[2], tonumber(A[3])
  local ttl, limit, req = tonumber(A[4]), tonumber(A[5]), A[7]
  -- A member pointed at the group's answer watches the job: may see it (/status) and, in flight,
  -- keeps whoever asked first from cancelling it alone.
  local function add_watcher(jk, job_id, r)
    local watchers = decode_array(redis.call("HGET", jk, "watchers"))
    for _, w in ipairs(watchers) do
      if same(w, r["user_id"]) then return end
    end
    table.insert(watchers, r["user_id"])
    redis.call("HSET", jk, "watchers", encode_array(watchers))
    index_add(prefix .. "jobs:user:" .. encode_exact(r["user_id"]), now, job_id, limit, ttl)
  end
  -- Adds the requester and returns nil, or says how the job already answers them (shown_to).
  local function add_requester(jk, job_id)
    if req == "" then return nil end
    local r = cjson.decode(req)
    local list = decode_array(redis.call("HGET", jk, "requesters"))
    local shown = shown_to(list, r)
    if shown and shown[1] == "here" then add_watcher(jk, job_id, r) end
    if shown then return shown end
    table.insert(list, r)
    redis.call("HSET", jk, "requesters", encode_array(list))
    index_add(prefix .. "jobs:user:" .. encode_exact(r["user_id"]), now, job_id, limit, ttl)
    return nil
  end
  local existing, st, ejk = current_job(A)
  -- This very create again (its reply was lost and the client sent it anew): the record is
  -- ours, and its message still to be sent. "joined" would send none, and the subject would
  -- point every later request at a job that never runs.
  if existing == id then return {id, "new"} end
  if existing and st == "succeeded" then
    -- Done a moment ago: a repeat is pointed at its answer; anyone else gets a job of their own.
    local shown = req ~= "" and answered_already(A)
    if shown then
      if shown[1] == "here" then add_watcher(ejk, existing, cjson.decode(req)) end
      return {existing, st, shown[1], shown[2]}
    end
  elseif existing then
    local shown = add_requester(ejk, existing)
    if shown == nil then return {existing, st} end
    return {existing, st, shown[1], shown[2]}
  end
  local ckey = A[6]
  local jk = prefix .. "job:" .. id
  local n = tonumber(A[8])
  local fields = {}
  for i = 9, 8 + 2 * n do fields[#fields + 1] = A[i] end
  redis.call("HSET", jk, unpack(fields))
  redis.call("HSET", jk, "requesters", "[]", "status", "queued", "enqueued_at", A[3])
  add_requester(jk, id)
  local queue = redis.call("HGET", jk, "queue")
  local actor = redis.call("HGET", jk, "actor")
  redis.call("EXPIRE", jk, ttl)
  index_add(prefix .. "jobs:all", now, id, limit, 0)
  index_add(prefix .. "jobs:status:queued", now, id, limit, 0)
  index_add(prefix .. "jobs:queue:" .. queue, now, id, limit, 0)
  index_add(prefix .. "jobs:actor:" .. actor, now, id, limit, 0)
  if ckey ~= "" then
    redis.call("HSET", jk, "coalesce_key", ckey)
    redis.call("SET", ckey, id, "EX", ttl)
  end
  return {id, "new"}
end
"""
_CREATE = CREATE_JOB_LUA + "return create_job(ARGV)\n"

#: The field of a job's delivery markers (bot.delivery: ``<user id>:<part>``, one hash a job)
#: that says which run of the job they belong to (a requeued job is a new run).
RUN_FIELD = "_run"
#: The delivery marker ``<user id>:detached``: the user's result went out as a message of its
#: own, because the message that answered them was not recorded in time (ATTACH_MESSAGE).
DETACHED = "detached"


def detached_mark(user_id: int | str) -> str:
    return f"{int(user_id)}:{DETACHED}"


# KEYS: the job, its delivery markers. ARGV: user id, chat id, message id, the user's "sent as
# a new message" marker (``<user id>:detached``), the markers' run field.
# → 1 (recorded), 0 (no such job or requester), or 2: too late, the job's delivery of this run
# stopped waiting for this message and sent the result as a message of its own (bot.delivery's
# ``DETACH_UNATTACHED``; the two scripts decide between them atomically).
# Which message of the user shows the job (progress edits and the result go there).
ATTACH_MESSAGE = _LUA_COMMON + """
local raw = redis.call("HGET", KEYS[1], "requesters")
if not raw then return 0 end
local run = redis.call("HGET", KEYS[1], "requeued_at") or ""
if redis.call("HEXISTS", KEYS[2], ARGV[4]) == 1 and (redis.call("HGET", KEYS[2], ARGV[5]) or "") == run then
  return 2
end
local list = decode_array(raw)
for _, r in ipairs(list) do
  if encode_exact(r["user_id"]) == ARGV[1] then
    r["chat_id"] = tonumber(ARGV[2])
    r["message_id"] = tonumber(ARGV[3])
    redis.call("HSET", KEYS[1], "requesters", encode_array(list))
    return 1
  end
end
return 0
"""

# KEYS: the job, its delivery markers. ARGV: the detached marker's suffix (DETACHED), the
# markers' ttl. The other side of ATTACH_MESSAGE, run by a delivery that waited long enough:
# each requester who asked through the bot (a chat) and whose job message is still not recorded
# gets the marker ``<user id>:detached``, so the message the bot records later is refused as
# late. → the user ids marked (their results go out as messages of their own).
DETACH_UNATTACHED = _LUA_COMMON + """
local raw = redis.call("HGET", KEYS[1], "requesters")
if not raw then return {} end
local detached = {}
for _, r in ipairs(decode_array(raw)) do
  local chat, shown = r["chat_id"], r["message_id"]
  if chat ~= nil and chat ~= cjson.null and (shown == nil or shown == cjson.null) then
    local uid = encode_exact(r["user_id"])
    redis.call("HSET", KEYS[2], uid .. ":" .. ARGV[1], "1")
    table.insert(detached, uid)
  end
end
if #detached > 0 then redis.call("EXPIRE", KEYS[2], ARGV[2]) end
return detached
"""

# KEYS: a job's record, then the other keys its delivery reads (its delivered markers). ARGV: ttl
# (:data:`OWED_TTL`), and a marker field (ARGV[2], optional) written into the markers while the
# record exists: it says the result was owed when a later delivery finds the record gone
# (``bot.delivery``). A delivery of the job failed and its result is still owed: each of the keys
# that exists and would expire within ``ttl`` is kept ``ttl`` seconds from now; a longer TTL (a
# failed job's record) or none stays as it is, never shortened. Returns the record's TTL after
# (-2: it is gone, -1: it does not expire).
KEEP_OWED = """
local ttl = tonumber(ARGV[1])
if ARGV[2] and ARGV[2] ~= "" and redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("HSET", KEYS[2], ARGV[2], "1")
  if redis.call("TTL", KEYS[2]) == -1 then redis.call("EXPIRE", KEYS[2], ttl) end
end
for _, key in ipairs(KEYS) do
  local left = redis.call("TTL", key)
  if left >= 0 and left < ttl then redis.call("EXPIRE", key, ttl) end
end
return redis.call("TTL", KEYS[1])
"""

# ARGV: prefix, id, now, max_deliveries, worker, ttl, limit, result_ttl, failure_ttl, stats_ttl
# ARGV 11: when the message was made (ms), or "". ARGV 12: this write's token, or "": the same
# begin sent again (its reply lost) answers what it answered (``replayed``), instead of taking
# its own open attempt for a lost worker's. Returns {verdict, n[, waits]}: run (n =
# attempt), final (n = status), canceled, crash_loop (n = workers lost), missing, superseded (a
# message made before the job's last requeue: the requeue sent one of its own, and both would
# run the job). ``waits`` (final, canceled, crash_loop): someone_waits, whether a delivery could
# tell anyone.
# A crash loop is max_deliveries deliveries whose worker died while running them (``lost``), not
# max_deliveries deliveries in all: retries are deliveries too, and one lost worker must not use
# up the last retry.
# A run that begins has reported no progress yet: the progress of the run before it (the
# "retrying" notice, or where a lost worker had got to) is dropped, else /status, the dashboard
# and admin.py would show it for the whole run of a job that reports none of its own.
_BEGIN = _LUA_COMMON + """
local prefix, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local max_deliveries, worker, ttl, limit = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local result_ttl, failure_ttl, stats_ttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local jk = prefix .. "job:" .. id
local f = redis.call("HMGET", jk, "status", "enqueued_at", "cancel_requested", "deliveries", "attempts",
  "timeline", "first_started_at", "lost", "queue", "actor", "requeued_at", "coalesce_key")
local st = f[1]
if not st then return {"missing", 0} end
local token = ARGV[12]
local again = replayed(jk, token)
if again then return again end
if st == "succeeded" or st == "failed" or st == "canceled" then
  return answer(jk, token, {"final", st, someone_waits(jk)})
end
local made, requeued = tonumber(ARGV[11]), tonumber(f[11])
if made and requeued and made < math.floor(requeued * 1000) then return answer(jk, token, {"superseded", 0}) end
local score = tonumber(f[2]) or now
if f[3] == "1" then
  release_subject(f[12], id)
  end_without_run(prefix, id, jk, st, "canceled", score, limit, ARGV[3], result_ttl, f[9], f[10], stats_ttl, {})
  return answer(jk, token, {"canceled", 0, someone_waits(jk)})
end
local deliveries = (tonumber(f[4]) or 0) + 1
local lost = tonumber(f[8]) or 0
local timeline = decode_array(f[6])
local last = timeline[#timeline]
if st == "started" and last and not last["outcome"] then
  last["outcome"] = "worker_lost"
  last["finished_at"] = now
  lost = lost + 1
end
if lost >= max_deliveries then
  local err = {type = "CrashLoop", code = "crash_loop", retryable = false,
    message = "its worker died " .. lost .. " times while running it (" .. deliveries .. " deliveries)"}
  release_subject(f[12], id)
  end_without_run(prefix, id, jk, st, "failed", score, limit, ARGV[3], failure_ttl, f[9], f[10], stats_ttl,
    {"error", cjson.encode(err), "timeline", encode_array(timeline), "deliveries", deliveries, "lost", lost})
  return answer(jk, token, {"crash_loop", lost, someone_waits(jk)})
end
local attempt = (tonumber(f[5]) or 0) + 1
table.insert(timeline, {attempt = attempt, worker = worker, started_at = now})
while #timeline > """ + str(TIMELINE_KEPT) + """ do table.remove(timeline, 1) end
redis.call("ZREM", prefix .. "jobs:status:" .. st, id)
index_add(prefix .. "jobs:status:started", score, id, limit, 0)
redis.call("HSET", jk, "status", "started", "timeline", encode_array(timeline), "started_at", ARGV[3],
  "worker", worker, "deliveries", deliveries, "attempts", attempt, "first_started_at", f[7] or ARGV[3],
  "lost", lost)
redis.call("HDEL", jk, "progress")
redis.call("EXPIRE", jk, ttl)
return answer(jk, token, {"run", attempt})
"""

# The request-error codes (faceit.errors.REQUEST_ERROR_CODES) as a Lua set.
_REQUEST_ERROR_CODES_LUA = "local REQUEST_ERROR_CODES = {" + ", ".join(
    f'["{code}"] = true' for code in sorted(REQUEST_ERROR_CODES)) + "}\n"

# ARGV: prefix, id, now, status, attempt, result|"", error|"", ttl, limit, retry_at|"",
#       stats_ttl, failure_ttl, acks_key|"", msgs_key|"", redis_message_id|"", token|"", buckets...
# Returns {status written | "stale" (re-delivered meanwhile) | "missing" (the record is gone), requester
# count, 1 if it acked the message}. The same finish sent again (its reply lost: the same token)
# answers what it answered (``replayed``), not "stale": else the result went undelivered, or the
# retry unsent.
_FINISH = _LUA_COMMON + _REQUEST_ERROR_CODES_LUA + """
local prefix, id, now, status = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local attempt, result, err = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local ttl, limit, retry_at = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local stats_ttl, failure_ttl = tonumber(ARGV[11]), tonumber(ARGV[12])
local jk = prefix .. "job:" .. id
local fields = redis.call("HMGET", jk, "status", "attempts", "queue", "actor", "enqueued_at",
  "first_started_at", "started_at", "requesters", "timeline", "coalesce_key", "requeued_at")
local st = fields[1]
if not st then return {"missing", 0} end
local token = ARGV[16]
local again = replayed(jk, token)
if again then return again end
if st ~= "started" or tonumber(fields[2]) ~= attempt then return answer(jk, token, {"stale", 0}) end
local queue, actor = fields[3], fields[4]
local score = tonumber(fields[5]) or now
local started = tonumber(fields[7]) or now
local run = now - started
local timeline = decode_array(fields[9])
local last = timeline[#timeline]
if last then
  last["finished_at"] = now
  last["outcome"] = status
  if err ~= "" then
    local e = cjson.decode(err)
    last["error"] = (e["type"] or "Error") .. ": " .. string.sub(e["message"] or "", 1, 300)
  end
end
redis.call("HSET", jk, "status", status, "timeline", encode_array(timeline))
redis.call("ZREM", prefix .. "jobs:status:" .. st, id)
index_add(prefix .. "jobs:status:" .. status, score, id, limit, 0)
if result ~= "" then redis.call("HSET", jk, "result", result) end
if err ~= "" then redis.call("HSET", jk, "error", err) end
if retry_at ~= "" then redis.call("HSET", jk, "retry_at", retry_at) end
local final = status == "succeeded" or status == "failed" or status == "canceled"
if final then
  redis.call("HSET", jk, "finished_at", ARGV[3])
  local ckey = fields[10]
  if ckey and redis.call("GET", ckey) == id then
    -- A success stays findable for a short while: the same request again (a link sent twice, a
    -- second member of the group) is pointed at its answer instead of starting it over.
    if status == "succeeded" then redis.call("EXPIRE", ckey, """ + str(REPEAT_WINDOW_SECONDS) + """)
    else redis.call("DEL", ckey) end
  end
end
redis.call("EXPIRE", jk, ttl)
-- Per-minute outcome counts, all-time totals and samples for the monitor and /metrics.
local outcome = status
if status == "retrying" then outcome = "retried" end
-- A failure refused for the request itself (a mistyped nickname: the user's doing) is also
-- counted as "refused": the failure rate that judges the system leaves those out.
local refused = false
if status == "failed" and err ~= "" then
  local ok, decoded = pcall(cjson.decode, err)
  refused = ok and type(decoded) == "table" and REQUEST_ERROR_CODES[decoded["code"]] == true
end
count_outcome(prefix, queue, actor, outcome, now, stats_ttl, refused)
if final or status == "retrying" then
  local hk = prefix .. "hist:" .. actor
  local placed = false
  for i = 17, #ARGV do
    if not placed and run <= tonumber(ARGV[i]) then
      redis.call("HINCRBY", hk, ARGV[i], 1)
      placed = true
    end
  end
  if not placed then redis.call("HINCRBY", hk, "+Inf", 1) end
  redis.call("HINCRBYFLOAT", hk, "sum", run)
  local first = tonumber(fields[6]) or started
  -- A job first started after a requeue (canceled while it waited) waited since the requeue, not
  -- through the canceled spell before it; one that had run keeps its first wait, as retries do.
  local requeued = tonumber(fields[11]) or 0
  local wait = first - ((first >= requeued) and math.max(score, requeued) or score)
  local samples = prefix .. "samples:" .. queue
  local n = redis.call("LPUSH", samples, cjson.encode({now, wait, run, outcome}))
  if n > """ + str(SAMPLES_KEPT) + """ then redis.call("LTRIM", samples, 0, """ + str(SAMPLES_KEPT - 1) + """) end
  if n == 1 then redis.call("EXPIRE", samples, stats_ttl) end
end
local requesters = decode_array(fields[8])
-- Ack the message in the same round trip when nothing is left to do for it: it succeeded and
-- nobody waits for a delivery. This mirrors Dramatiq's own ack (dispatch.lua "ack").
local acked = 0
local acks_key, msgs_key, redis_id = ARGV[13], ARGV[14], ARGV[15]
if acks_key ~= "" and status == "succeeded" and #requesters == 0 then
  if redis.call("SREM", acks_key, redis_id) > 0 then redis.call("HDEL", msgs_key, redis_id) end
  acked = 1
end
return answer(jk, token, {status, #requesters, acked})
"""

#: ``canceled_by`` of a job: an operator stopped it (the dashboard, the admin tool, an admin's /cancel of
#: someone else's job, a queue cleared: its users are told so), or a user their own.
CANCELED_BY_OPERATOR = "operator"
CANCELED_BY_USER = "user"

# ARGV: prefix, id, user id. One requester leaves a job others still wait for (their Cancel):
# → "left"; "alone" when nobody else asked (the caller cancels the job instead); "not_requester";
# "missing"; or the final status the job already had. The job stays in the user's index and
# names them in ``left`` (ids as text: cjson would write a 16-digit id in exponent form): their
# message shows its id, and /status answers for it ("cancelled for you") rather than "no job".
_LEAVE = _LUA_COMMON + """
local prefix, id, user = ARGV[1], ARGV[2], ARGV[3]
local jk = prefix .. "job:" .. id
local st = redis.call("HGET", jk, "status")
if not st then return "missing" end
if st == "succeeded" or st == "failed" or st == "canceled" then return st end
local kept, found = {}, false
for _, r in ipairs(decode_array(redis.call("HGET", jk, "requesters"))) do
  if encode_exact(r["user_id"]) == user then found = true else table.insert(kept, r) end
end
if not found then return "not_requester" end
if #kept == 0 then return "alone" end
redis.call("HSET", jk, "requesters", encode_array(kept))
local left = decode_array(redis.call("HGET", jk, "left"))
table.insert(left, user)
redis.call("HSET", jk, "left", encode_array(left))
return "left"
"""

# ARGV: prefix, id, now, result_ttl, limit, failure_ttl, stats_ttl[, user id[, by]]. ``by`` (when
# given) is kept as ``canceled_by``: "operator" makes its users' note say who stopped it. Returns {the status
# after the call, 1 when someone waits to be told of it (set for "canceled" only, else 0)}. With
# a user id, the cancel is that user's alone: when anyone else asked for the job too, or watches
# it (they joined since the user's record was read), nothing changes and the answer is "others".
# A running job stops at its next await; its subject is let go at once, so a request for it
# meanwhile starts a job of its own instead of joining one on its way out.
_CANCEL = _LUA_COMMON + """
local prefix, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local result_ttl, limit, failure_ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local stats_ttl = tonumber(ARGV[7])
local jk = prefix .. "job:" .. id
local f = redis.call("HMGET", jk, "status", "enqueued_at", "coalesce_key", "queue", "actor", "requesters",
  "watchers")
local st = f[1]
if not st then return {"missing", 0} end
-- Already canceled: not this cancel's doing, so nothing to tell or count.
if st == "canceled" then return {"already_canceled", 0} end
if st == "succeeded" or st == "failed" then return {st, 0} end
if ARGV[8] and ARGV[8] ~= "" then  -- nor members of a group its message was shown to (watchers)
  for _, r in ipairs(decode_array(f[6])) do
    if encode_exact(r["user_id"]) ~= ARGV[8] then return {"others", 0} end
  end
  for _, w in ipairs(decode_array(f[7])) do
    if encode_exact(w) ~= ARGV[8] then return {"others", 0} end
  end
end
release_subject(f[3], id)
if ARGV[9] and ARGV[9] ~= "" then redis.call("HSET", jk, "canceled_by", ARGV[9]) end
if st == "started" then
  redis.call("HSET", jk, "cancel_requested", "1")
  return {"canceling", 0}
end
-- queued or retrying: the message will be skipped when a worker takes it. Kept as long as a
-- failure, not a result: its message still waits in the queue (a backlog, no worker up), and
-- when a worker takes it, this record is what says "skip it". Gone, the job would be made anew
-- and run for nobody.
end_without_run(prefix, id, jk, st, "canceled", tonumber(f[2]) or now, limit, ARGV[3], failure_ttl, f[4], f[5],
  stats_ttl, {"cancel_requested", "1"})
return {"canceled", someone_waits(jk)}
"""

#: What a requeue's reset clears, and what it sets anew; its undo puts back both (and the status).
RESET_CLEARS = ("error", "result", "finished_at", "cancel_requested", "retry_at", "progress")
RESET_SETS = ("deliveries", "lost", "requeued_at")

# ARGV: prefix, id, now, ttl, limit.  Back to queued for a requeue; returns the old status.
# ``now`` is the write's token too: this very reset sent again (its reply lost) answers what it
# answered, else the requeue took the job for one already queued and sent no message.
_RESET = _LUA_COMMON + """
local prefix, id, now, ttl, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local jk = prefix .. "job:" .. id
local f = redis.call("HMGET", jk, "status", "enqueued_at")
local st = f[1]
if not st then return "missing" end
local again = replayed(jk, ARGV[3])
if again then return again end
if st ~= "failed" and st ~= "canceled" then return answer(jk, ARGV[3], st) end
redis.call("ZREM", prefix .. "jobs:status:" .. st, id)
index_add(prefix .. "jobs:status:queued", tonumber(f[2]) or now, id, limit, 0)
redis.call("HDEL", jk, """ + ", ".join(f'"{name}"' for name in RESET_CLEARS) + """)
redis.call("HSET", jk, "status", "queued", "deliveries", "0", "lost", "0", "requeued_at", ARGV[3])
redis.call("EXPIRE", jk, ttl)
return answer(jk, ARGV[3], st)
"""

# ARGV: prefix, id, ttl. A requeued job whose message went out is in flight again: a request
# for the same subject joins it instead of starting another (unless one already runs).
_RETAKE_COALESCE = """
local jk = ARGV[1] .. "job:" .. ARGV[2]
local f = redis.call("HMGET", jk, "status", "coalesce_key")
if (f[1] == "queued" or f[1] == "started" or f[1] == "retrying") and f[2] and not redis.call("GET", f[2]) then
  redis.call("SET", f[2], ARGV[2], "EX", tonumber(ARGV[3]))
  return 1
end
return 0
"""

# ARGV: prefix, id, the requeued_at of the reset, limit, then the fields it had (name, value, …).
# Undoes a requeue whose message could not be sent: the record is as it was, and can be
# requeued again. → 1 when undone; 0 when it moved on meanwhile (a worker took it after all).
_UNDO_RESET = _LUA_COMMON + """
local prefix, id, limit = ARGV[1], ARGV[2], tonumber(ARGV[4])
local jk = prefix .. "job:" .. id
local f = redis.call("HMGET", jk, "status", "requeued_at", "deliveries")
if f[1] ~= "queued" or f[2] ~= ARGV[3] or f[3] ~= "0" then return 0 end
local before = {}
for i = 5, #ARGV, 2 do before[ARGV[i]] = ARGV[i + 1] end
local score = tonumber(redis.call("HGET", jk, "enqueued_at")) or 0
redis.call("ZREM", prefix .. "jobs:status:queued", id)
index_add(prefix .. "jobs:status:" .. before["status"], score, id, limit, 0)
redis.call("HDEL", jk, "requeued_at")
for name, value in pairs(before) do
  if value ~= "" then redis.call("HSET", jk, name, value) end
end
return 1
"""

#: The error code of a job failed for having no message behind it (:meth:`JobStore.fail_orphaned`).
ORPHANED = "orphaned"

# ARGV: prefix, id, now, limit, failure_ttl, stats_ttl, the status it must still have (queued or
# retrying), the value its ``retry_at`` (retrying) or ``requeued_at`` (queued) must still have
# ("" for none), error JSON. Fails an active record no message will ever start (a publish lost
# between the record and its message): as the cancel script does for a queued job, its subject
# is let go (a later request starts a job of its own instead of joining the dead one) and it
# leaves the active indexes (the users' active-job slots drop it at their next check, as they
# do any final job). → {"failed", someone waits (1/0)}, or {the status it had, 0} when it moved
# on since it was read (a worker took it, a retry was scheduled anew, a requeue): nothing written.
_FAIL_ORPHANED = _LUA_COMMON + """
local prefix, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local limit, failure_ttl, stats_ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local jk = prefix .. "job:" .. id
local f = redis.call("HMGET", jk, "status", "enqueued_at", "coalesce_key", "queue", "actor", "retry_at",
  "requeued_at")
local st = f[1]
if not st then return {"missing", 0} end
local stamp = (st == "retrying" and f[6]) or (st == "queued" and f[7]) or ""
if st ~= ARGV[7] or stamp ~= ARGV[8] then return {st, 0} end
release_subject(f[3], id)
end_without_run(prefix, id, jk, st, "failed", tonumber(f[2]) or now, limit, ARGV[3], failure_ttl, f[4], f[5],
  stats_ttl, {"error", ARGV[9]})
return {"failed", someone_waits(jk)}
"""

# ARGV: prefix, id, progress JSON[, the status it must be in (started), the attempt it must be at].
# → 1 when written; 0 when the job moved on (ended, re-delivered to another attempt, canceled).
_PROGRESS = """
local jk = ARGV[1] .. "job:" .. ARGV[2]
local f = redis.call("HMGET", jk, "status", "attempts", "cancel_requested")
if f[1] ~= (ARGV[4] or "started") then return 0 end
if ARGV[5] and ARGV[5] ~= "" and f[2] ~= ARGV[5] then return 0 end
if f[3] == "1" then return 0 end
redis.call("HSET", jk, "progress", ARGV[3])
return 1
"""


# KEYS: job indexes. ARGV: prefix, the cursors' hash, then one score per index (its ids scored
# below it are of jobs enqueued long enough ago that their record may have lived out its TTL),
# then how many such ids to look at per index. Removes the ids whose record is gone, going on
# from where the last call stopped (a cursor per index: live ids, a day of failures in a mixed
# index, cannot hold every call at the same oldest ids) and starting over once past the score.
# Returns for each index its size after, 1 when its pass reached the score (else 0), and 1 when
# the cursor was kept (0: Redis refused its write, so the next step reads the same ids again).
# Records expire by TTL and nothing tells the indexes, so a count read with ZCARD alone kept a
# day of expired jobs: "succeeded 12,000" over a list of the last hour's 500.
_PRUNE_EXPIRED = """
local prefix, cursors, n = ARGV[1], ARGV[2], tonumber(ARGV[#KEYS + 3])
local out = {}
for i, key in ipairs(KEYS) do
  local from = redis.call("HGET", cursors, key)
  local old = redis.call("ZRANGEBYSCORE", key, from and ("(" .. from) or "-inf", ARGV[i + 2],
    "WITHSCORES", "LIMIT", 0, n)
  local gone = {}
  for j = 1, #old, 2 do
    if redis.call("EXISTS", prefix .. "job:" .. old[j]) == 0 then gone[#gone + 1] = old[j] end
  end
  for start = 1, #gone, 1000 do
    redis.call("ZREM", key, unpack(gone, start, math.min(start + 999, #gone)))
  end
  local done = #old < 2 * n
  -- pcall: a full Redis (noeviction) refuses the cursor's HSET, and a count must still answer
  -- then; the next step looks at the same ids again instead.
  local kept = 1
  if done then
    redis.call("HDEL", cursors, key)
  else
    local saved = redis.pcall("HSET", cursors, key, old[#old])
    if type(saved) == "table" and saved.err then kept = 0 end
  end
  out[#out + 1] = redis.call("ZCARD", key)
  out[#out + 1] = done and 1 or 0
  out[#out + 1] = kept
end
return out
"""
#: How many ids old enough to have expired one count looks at per index.
PRUNE_BATCH = 500


@dataclass
class JobRecord:
    """One job as stored; ``raw`` keeps fields this class does not name."""

    id: str
    actor: str = ""
    queue: str = ""
    status: str = "queued"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    requesters: list[dict[str, Any]] = field(default_factory=list)
    watchers: list[int] = field(default_factory=list)  # pointed at a group's message showing the job
    attempts: int = 0
    deliveries: int = 0
    max_retries: int = 0
    enqueued_at: float | None = None
    first_started_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    retry_at: float | None = None
    progress: dict[str, Any] | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    worker: str = ""
    cancel_requested: bool = False
    raw: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def user_ids(self) -> list[int]:
        """Who asked for the job: its requesters, then its watchers."""
        asked = [int(r["user_id"]) for r in self.requesters if r.get("user_id") is not None]
        return asked + [int(w) for w in self.watchers if int(w) not in asked]

    @property
    def left_user_ids(self) -> list[int]:
        """Who asked for the job and then stopped waiting for it while others still did (their
        Cancel: :meth:`JobStore.leave`), and has not asked for it again."""
        try:
            left = json.loads(self.raw.get("left") or "[]")
        except ValueError:
            return []
        asked = set(self.user_ids)
        return [int(u) for u in left if str(u).isdigit() and int(u) not in asked] if isinstance(left, list) else []

    @classmethod
    def from_hash(cls, job_id: str, data: dict[str, str]) -> JobRecord:
        record = cls(id=job_id, raw=data)
        for name in ("actor", "queue", "status", "worker"):
            if name in data:
                setattr(record, name, data[name])
        for name in _JSON_FIELDS:
            if data.get(name):
                try:
                    setattr(record, name, json.loads(data[name]))
                except ValueError:
                    pass
        for name in _FLOAT_FIELDS:
            if data.get(name):
                setattr(record, name, float(data[name]))
        for name in _INT_FIELDS:
            if data.get(name):
                setattr(record, name, int(data[name]))
        record.cancel_requested = data.get("cancel_requested") == "1"
        return record

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for the API, the admin tool and tests)."""
        return {
            "id": self.id, "actor": self.actor, "queue": self.queue, "status": self.status,
            "args": self.args, "kwargs": self.kwargs, "options": self.options,
            "requesters": self.requesters, "watchers": self.watchers, "attempts": self.attempts,
            "deliveries": self.deliveries, "max_retries": self.max_retries,
            "enqueued_at": self.enqueued_at, "first_started_at": self.first_started_at,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "retry_at": self.retry_at, "progress": self.progress, "result": self.result,
            "error": self.error, "timeline": self.timeline, "worker": self.worker,
            "cancel_requested": self.cancel_requested,
        }


@dataclass(frozen=True)
class Created:
    """What ``create_job`` did: the job's id, ``"new"`` or the status of the job it met (in flight,
    or just succeeded), whether this requester had already asked for that job (``again``), and the
    message that already shows it in the requester's group (``shown_here``: they were not added;
    0 while that message is being sent)."""

    job_id: str
    state: str
    again: bool = False
    shown_here: int | None = None
    again_in_chat: int | None = None  # again: the chat of the answer that shows it (None: not known)

    @classmethod
    def from_reply(cls, reply: list[Any]) -> Created:
        """From ``{id, state[, "again", chat id | "here", message id]}``; the bot's job start
        returns the same tail after its own fields (:mod:`bot.jobstart`)."""
        kind = str(reply[2]) if len(reply) > 2 else ""
        detail = str(reply[3]) if len(reply) > 3 and reply[3] is not None else ""
        shown = int(detail) if kind == "here" and detail else None
        chat = int(detail) if kind == "again" and detail.lstrip("-").isdigit() else None
        return cls(str(reply[0]), str(reply[1]), kind == "again", shown, chat)


@dataclass(frozen=True)
class Begin:
    """What ``begin`` decided for a delivery: run it (attempt n) or skip it (why)."""

    verdict: str  # run | final | canceled | crash_loop | missing | superseded
    attempt: int = 0
    status: str = ""
    someone_waits: bool = True  # final, canceled, crash_loop: a delivery could tell anyone


@dataclass(frozen=True)
class Finish:
    status: str  # the status written, "stale" (re-delivered meanwhile) or "missing" (record gone)
    requesters: int = 0
    acked: bool = False


def write_token() -> str:
    """A token for one begin or finish, made once and passed on every try of it. A call
    whose reply was lost (a dropped connection, a failover, a stalled Redis past the socket
    timeout) may have run: sent again, it answers what it answered (the scripts' ``replayed``),
    not judge its own write as another's."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AckTarget:
    """Where Dramatiq's Redis broker keeps a fetched message: lets ``finish`` ack it too."""

    acks_key: str
    msgs_key: str
    redis_message_id: str


class JobStore:
    """Reads and writes job records. ``client`` is a sync redis-py client (decode_responses=True).

    ``result_ttl``/``failure_ttl`` are the record lifetimes; ``index_limit`` caps every index;
    ``stats_ttl`` is how long per-minute counters and samples live (the metrics retention).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "fb:",
        result_ttl: int = 3600,
        failure_ttl: int = 86400,
        index_limit: int = 10000,
        stats_ttl: int = 7 * 86400,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.result_ttl = result_ttl
        self.failure_ttl = failure_ttl
        self.index_limit = index_limit
        self.stats_ttl = stats_ttl
        self._create = client.register_script(_CREATE)
        self._begin = client.register_script(_BEGIN)
        self._finish = client.register_script(_FINISH)
        self._cancel = client.register_script(_CANCEL)
        self._leave = client.register_script(_LEAVE)
        self._reset = client.register_script(_RESET)
        self._undo_reset = client.register_script(_UNDO_RESET)
        self._retake_coalesce = client.register_script(_RETAKE_COALESCE)
        self._progress = client.register_script(_PROGRESS)
        self._fail_orphaned = client.register_script(_FAIL_ORPHANED)
        self._prune_expired = client.register_script(_PRUNE_EXPIRED)
        # Begin and finish run once per job on a worker's hot path: straight to a connection
        # of the worker thread (see queues/direct_scripts.py). Their caller retries on errors.
        self._direct = direct_scripts_for(client)

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Any) -> JobStore:
        return cls(
            client,
            prefix=settings.redis_key_prefix,
            result_ttl=settings.queue_result_ttl,
            failure_ttl=settings.queue_failure_ttl,
            index_limit=settings.queue_index_limit,
            stats_ttl=int(settings.queue_metrics_retention_days * 86400),
        )

    # --- keys (the only place they are spelled) -------------------------------------------

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def index_key(self, kind: str, value: str | int | None = None) -> str:
        return f"{self.prefix}jobs:{kind}" if value is None else f"{self.prefix}jobs:{kind}:{value}"

    def coalesce_key(self, actor: str, subject: str) -> str:
        return f"{self.prefix}coalesce:{actor}:{subject}"

    def stats_key(self, queue: str, minute: int) -> str:
        return f"{self.prefix}stats:{queue}:{minute}"

    def actor_stats_key(self, actor: str, minute: int) -> str:
        return f"{self.prefix}stats:actor:{actor}:{minute}"

    def samples_key(self, queue: str) -> str:
        return f"{self.prefix}samples:{queue}"

    def totals_key(self) -> str:
        return f"{self.prefix}totals"

    def histogram_key(self, actor: str) -> str:
        return f"{self.prefix}hist:{actor}"

    # --- transitions ----------------------------------------------------------------------

    def _hot(self, script: Any, args: list[Any]) -> Any:
        return script(args=args) if self._direct is None else self._direct.run(script, args)

    def create(self, job_id: str, **record: Any) -> Created:
        """Write a ``queued`` record, or join the in-flight job of the same coalesce subject (or be
        pointed at it, or at a job of that subject that just succeeded: see :data:`CREATE_JOB_LUA`).

        ``record``: the keyword arguments of :meth:`create_args` (actor, queue, args, kwargs,
        options, max_retries, requester, coalesce, now). Returns :class:`Created`: the new job
        id and ``"new"``, or the in-flight job's id and status when coalesced (the requester is
        then added to it, unless they were on it already: ``again``).
        """
        return self.create_from(self.create_args(job_id, **record))

    def create_from(self, create_args: list[Any]) -> Created:
        """:meth:`create` with its arguments already built (:meth:`create_args`)."""
        return Created.from_reply(self._create(args=create_args))

    def create_args(
        self,
        job_id: str,
        *,
        actor: str,
        queue: str,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        max_retries: int = 0,
        requester: dict[str, Any] | None = None,
        coalesce: str | None = None,
        now: float | None = None,
    ) -> list[Any]:
        """The arguments of ``create_job`` (:data:`CREATE_JOB_LUA`) for this record."""
        fields = {
            "id": job_id, "actor": actor, "queue": queue,
            "args": json.dumps(list(args)), "kwargs": json.dumps(kwargs or {}),
            "options": json.dumps(options or {}), "max_retries": str(max_retries),
            "attempts": "0", "deliveries": "0", "timeline": "[]",
        }
        flat = [item for pair in fields.items() for item in pair]
        return [
            self.prefix, job_id, repr(now or time.time()), self.failure_ttl, self.index_limit,
            self.coalesce_key(actor, coalesce) if coalesce else "",
            json.dumps(requester) if requester else "", len(fields), *flat,
        ]

    def begin(self, job_id: str, *, max_deliveries: int, worker: str = "", made_at_ms: int | None = None,
              token: str = "") -> Begin:
        """Mark a delivery as started, unless the job ended, was canceled or crash-loops, or the
        message (made at ``made_at_ms``, Dramatiq's ``message_timestamp``) is older than the job's
        last requeue: a job canceled while queued keeps its message there, and the requeue sends
        another.

        ``token`` (one per delivery, the same on every try of this call) makes a call sent again
        after its reply was lost answer as the first did (:func:`write_token`)."""
        verdict, value, *rest = self._hot(self._begin, [
            self.prefix, job_id, repr(time.time()), max_deliveries, worker, self.failure_ttl,
            self.index_limit, self.result_ttl, self.failure_ttl, self.stats_ttl,
            "" if made_at_ms is None else str(int(made_at_ms)), token,
        ])
        waits = bool(int(rest[0])) if rest else True
        if verdict == "run":
            return Begin("run", attempt=int(value))
        if verdict == "final":
            return Begin("final", status=str(value), someone_waits=waits)
        return Begin(verdict, attempt=int(value or 0), someone_waits=waits)

    def finish(
        self,
        job_id: str,
        *,
        attempt: int,
        status: str,
        result: Any = None,
        error: dict[str, Any] | None = None,
        retry_at: float | None = None,
        ack: AckTarget | None = None,
        token: str = "",
    ) -> Finish:
        """Record the end of attempt ``attempt``; a stale attempt writes nothing.

        With ``ack``, a success that nobody waits on also acks its message (one round trip).
        ``token`` (the same on every try of this call) makes a call sent again after its reply
        was lost answer with the status it wrote, not "stale" (:func:`write_token`).
        """
        now = time.time()
        ttl = {"succeeded": self.result_ttl, "canceled": self.result_ttl}.get(status, self.failure_ttl)
        reply = self._hot(self._finish, [
            self.prefix, job_id, repr(now), status, attempt,
            "" if result is None else json.dumps(result), "" if error is None else json.dumps(error),
            ttl, self.index_limit, "" if retry_at is None else repr(retry_at), self.stats_ttl, self.failure_ttl, ack.acks_key if ack else "", ack.msgs_key if ack else "",
            ack.redis_message_id if ack else "", token, *HISTOGRAM_BUCKETS,
        ])
        return Finish(str(reply[0]), int(reply[1]), bool(reply[2]) if len(reply) > 2 else False)

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> bool:
        return bool(self._progress(args=[self.prefix, job_id, json.dumps(progress)]))

    def cancel(self, job_id: str, *, alone: int | None = None, by: str = "") -> tuple[str, bool]:
        """Cancel a job: ``canceled`` (it will not run), ``canceling`` (running; stops at its
        next await), ``missing``, ``already_canceled`` (by an earlier cancel: this one did
        nothing, so its caller tells nobody and counts nothing), or the final status it had; and
        whether anyone waits to be told of a ``canceled`` job (requesters or notifications), from
        the same call: no read of the record after it. ``alone``: only if that user is the one
        requester (else ``others``, and nothing changed: someone joined since it was read).
        ``by``: who cancels (:data:`CANCELED_BY_OPERATOR`, :data:`CANCELED_BY_USER`), kept as the
        record's ``canceled_by``."""
        outcome, waits = self._cancel(args=[
            self.prefix, job_id, repr(time.time()), self.result_ttl, self.index_limit, self.failure_ttl,
            self.stats_ttl, "" if alone is None else str(int(alone)), by,
        ])
        return str(outcome), bool(int(waits))

    def leave(self, job_id: str, user_id: int) -> str:
        """``user_id`` stops waiting for a job others asked for too (see :data:`_LEAVE`)."""
        return str(self._leave(args=[self.prefix, job_id, str(int(user_id))]))

    def reset_for_requeue(self, job_id: str, now: float | None = None) -> str:
        """Put a failed or canceled record back to ``queued`` (``requeued_at``: ``now``); returns
        the status it had."""
        stamp = repr(time.time() if now is None else now)
        return str(self._reset(args=[self.prefix, job_id, stamp, self.failure_ttl, self.index_limit]))

    def retake_coalesce(self, job_id: str) -> bool:
        """A requeued job whose message went out takes its coalesce key again (see _RETAKE_COALESCE)."""
        return bool(self._retake_coalesce(args=[self.prefix, job_id, self.failure_ttl]))

    def undo_reset(self, before: JobRecord, now: float) -> bool:
        """Put back the record ``before`` was, reset at ``now``, when its message could not be
        sent: left ``queued`` it would wait for a message that never comes, and could not be
        requeued again. False when a worker took it meanwhile."""
        fields = ["status", before.status]
        for name in RESET_CLEARS + RESET_SETS:
            fields += [name, before.raw.get(name) or ""]
        return bool(self._undo_reset(args=[self.prefix, before.id, repr(now), self.index_limit, *fields]))

    def fail_orphaned(self, record: JobRecord, message: str) -> tuple[str, bool]:
        """Fail ``record`` (queued or retrying, as read) with the code :data:`ORPHANED`: no message
        will ever start it. Nothing is written when it moved on since it was read. Returns the
        status after (``failed`` when this call failed it) and whether anyone waits to be told."""
        stamp = record.raw.get("retry_at" if record.status == "retrying" else "requeued_at") or ""
        error = {"type": "Orphaned", "code": ORPHANED, "retryable": False, "message": message}
        outcome, waits = self._fail_orphaned(args=[
            self.prefix, record.id, repr(time.time()), self.index_limit, self.failure_ttl, self.stats_ttl,
            record.status, stamp, json.dumps(error),
        ])
        return str(outcome), bool(int(waits))

    # --- reads ----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        data = self.client.hgetall(self.job_key(job_id))
        return JobRecord.from_hash(job_id, data) if data else None

    def get_many(self, job_ids: list[str]) -> list[JobRecord | None]:
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self.job_key(job_id))
        return [JobRecord.from_hash(i, d) if d else None for i, d in zip(job_ids, pipe.execute(), strict=True)]

    def status(self, job_id: str) -> str | None:
        return self.client.hget(self.job_key(job_id), "status")

    def statuses(self, job_ids: list[str]) -> list[str | None]:
        """The status of each job (None: its record is gone), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.job_key(job_id), "status")
        return pipe.execute()

    def failures_since(self, actor: str, since: float) -> list[tuple[str, str | None, float | None]]:
        """``(id, error code, finished_at)`` of each failed ``actor`` job enqueued since ``since``,
        newest first: the failed index is scored by enqueue time, so only that window is read, and
        of each record only the three fields (two round trips, whatever else failed meanwhile)."""
        ids = self.client.zrevrangebyscore(self.index_key("status", "failed"), "+inf", since)
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.job_key(job_id), "actor", "error", "finished_at")
        rows = []
        for job_id, (job_actor, error, finished) in zip(ids, pipe.execute(), strict=True):
            if job_actor != actor:
                continue
            try:
                code = json.loads(error).get("code") if error else None
            except (ValueError, AttributeError):
                code = None
            rows.append((job_id, code, float(finished) if finished else None))
        return rows

    def is_cancel_requested(self, job_id: str) -> bool:
        return self.client.hget(self.job_key(job_id), "cancel_requested") == "1"

    def list_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        actor: str | None = None,
        user_id: int | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[JobRecord], int]:
        """Newest first, filtered by any of status/queue/actor/user; returns (page, total).

        The narrowest index drives the scan; the other filters are applied to the records.
        Ids whose record expired are pruned from the index on the way.
        """
        filters = [("status", status), ("queue", queue), ("actor", actor), ("user", user_id)]
        chosen = [(k, v) for k, v in filters if v is not None]
        if len(chosen) == 1:
            key = self.index_key(*chosen[0])
        elif chosen:
            sizes = [(self.client.zcard(self.index_key(k, v)), k, v) for k, v in chosen]
            _, kind, value = min(sizes, key=lambda item: item[0])
            key = self.index_key(kind, value)
        else:
            key = self.index_key("all")
        if len(chosen) <= 1:
            total = self.live_sizes([key])[0]  # pruned first, so the page's offset counts (mostly) live jobs
            ids = self.client.zrevrange(key, offset, offset + limit - 1)
            records = self._prune(key, ids)
            return records, total - (len(ids) - len(records))
        matches: list[JobRecord] = []
        total = 0  # every match, the ones after the page too: the pager needs them
        for start in range(0, self.index_limit, 500):
            ids = self.client.zrevrange(key, start, start + 499)
            if not ids:
                break
            for record in self._prune(key, ids):
                if self._matches(record, status, queue, actor, user_id):
                    if offset <= total < offset + limit:
                        matches.append(record)
                    total += 1
        return matches, total

    def _prune(self, key: str, ids: list[str]) -> list[JobRecord]:
        records = self.get_many(ids) if ids else []
        gone = [job_id for job_id, rec in zip(ids, records, strict=True) if rec is None]
        if gone:
            self.client.zrem(key, *gone)
        return [rec for rec in records if rec is not None]

    @staticmethod
    def _matches(record: JobRecord, status: str | None, queue: str | None, actor: str | None,
                 user_id: int | None) -> bool:
        return (
            (status is None or record.status == status)
            and (queue is None or record.queue == queue)
            and (actor is None or record.actor == actor)
            and (user_id is None or int(user_id) in record.user_ids)
        )

    def _expiry_cutoff(self, key: str, now: float) -> float:
        """Below this score an index's ids may be of expired records: jobs enqueued longer ago
        than the shortest lifetime their record can have in that index."""
        status = key.removeprefix(self.index_key("status", ""))
        if status == "succeeded":
            return now - self.result_ttl
        if status in ("failed", *ACTIVE_STATUSES):
            return now - self.failure_ttl  # active records are kept failure_ttl, renewed on each change
        return now - min(self.result_ttl, self.failure_ttl)

    def prune_step(self, keys: list[str], cutoffs: list[float],
                   batch: int = PRUNE_BATCH) -> list[tuple[int, bool, bool]]:
        """One bounded step of pruning expired ids from each index (see ``_PRUNE_EXPIRED``):
        (size after, whether this pass over the index is complete, whether the place it reached
        was kept for the next step) per index."""
        reply = self._prune_expired(keys=keys, args=[self.prefix, self.index_key("prune-cursor"),
                                                     *map(repr, cutoffs), batch])
        return [(int(reply[i]), bool(reply[i + 1]), bool(reply[i + 2])) for i in range(0, len(reply), 3)]

    def live_sizes(self, keys: list[str]) -> list[int]:
        """The size of each index with the ids of expired records (mostly) out of it, in one call.

        Only ids enqueued more than a record lifetime ago can be expired, and at most
        :data:`PRUNE_BATCH` of them are looked at per index and call, going on where the last
        call stopped: a count read every few seconds (the dashboard, ``/metrics``) stays cheap,
        and a backlog of expired ids goes over a few reads."""
        now = time.time()
        return [size for size, _, _ in self.prune_step(keys, [self._expiry_cutoff(key, now) for key in keys])]

    def count_by_status(self) -> dict[str, int]:
        """Jobs of each status whose record is still kept (expired ones pruned on the way)."""
        return dict(zip(ALL_STATUSES, self.live_sizes([self.index_key("status", s) for s in ALL_STATUSES]),
                        strict=True))

    def ids_named(self, ref: str, user_id: int | None = None) -> list[str]:
        """The jobs a typed id (:func:`queues.jobids.job_ref`) names: a whole id names itself, with
        no scan (its record may be gone: the caller reads it); a start of one, each job whose id
        starts with it (:meth:`ids_starting_with`)."""
        return [ref] if whole_job_id(ref) else self.ids_starting_with(ref, user_id)

    def ids_starting_with(self, prefix: str, user_id: int | None = None) -> list[str]:
        """The ids of the jobs whose id starts with ``prefix`` (lower-case hex and dashes: a job id
        typed short, as the dashboard shows it): among ``user_id``'s jobs (their index, which holds
        the jobs they asked for or watch), or among all jobs (``None``: an admin). Ids whose record
        has expired are left out, so an old job cannot make a prefix look ambiguous."""
        if not prefix or set(prefix) - set("0123456789abcdef-"):  # a glob character would match others
            raise ValueError(f"not the start of a job id: {prefix!r}")
        key = self.index_key("all") if user_id is None else self.index_key("user", user_id)
        ids = sorted({member for member, _ in self.client.zscan_iter(key, match=f"{prefix}*", count=1000)})
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.exists(self.job_key(job_id))
        return [job_id for job_id, live in zip(ids, pipe.execute(), strict=True) if live]


class AsyncJobChannel:
    """What a running async actor needs of its record: progress writes and cancel flags.

    ``client`` is a ``redis.asyncio`` client (decode_responses=True) on the actor's loop.
    """

    def __init__(self, client: Any, *, prefix: str = "fb:") -> None:
        self.client = client
        self.prefix = prefix
        self._progress = client.register_script(_PROGRESS)

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    async def set_progress(self, job_id: str, progress: dict[str, Any], *, status: str = "started",
                           attempt: int | None = None) -> bool:
        """Write the job's progress while it is in ``status`` (at ``attempt``, when given) and no
        cancel was asked; False when it moved on (nothing written: nobody should be told)."""
        args = [self.prefix, job_id, json.dumps(progress), status, "" if attempt is None else str(attempt)]
        return bool(await self._progress(args=args))

    async def cancel_requested(self, job_ids: list[str]) -> list[str]:
        """The ids among ``job_ids`` whose cancel was asked for."""
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.job_key(job_id), "cancel_requested")
        flags = await pipe.execute()
        return [job_id for job_id, flag in zip(job_ids, flags, strict=True) if flag == "1"]
