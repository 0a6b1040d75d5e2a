"""The journal's moves as Lua scripts: each runs atomically inside Redis.

A row's state lives in one hash (id -> state), its details in another (id -> JSON), the
count of rows in each state in a third, moved in the same script as the state, so a
report reads the counts without scanning. No script ever moves a row out of a final
state (accepted, refused, unknown) except :data:`ENQUEUE` when asked to retry it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CLAIM", "DEFINE", "ENQUEUE", "GCRA", "LEASE_DROP", "LEASE_KEEP", "RECORD", "REQUEUE"]

# KEYS: definition. ARGV: field, value, ... Written only when the campaign has none:
# the first producer's definition stands.
DEFINE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS: state, details, counts, stream. ARGV: payload, states to retry (comma
# separated), n, then n triples (id, line, recipient). All or nothing: when a row is
# already known in a state not to retry, another producer got there first; nothing is
# written and -1 tells the caller to look again. Otherwise every row becomes pending and
# the job carrying them is added to the stream in the same step.
ENQUEUE: Final = """
local retry = {}
for s in string.gmatch(ARGV[2], '[^,]+') do retry[s] = true end
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local st = redis.call('HGET', KEYS[1], ARGV[4 + 3 * i])
  if st and not retry[st] then return -1 end
end
for i = 0, n - 1 do
  local id = ARGV[4 + 3 * i]
  local st = redis.call('HGET', KEYS[1], id)
  if st then
    redis.call('HINCRBY', KEYS[3], st, -1)
  else
    local recipient = ARGV[6 + 3 * i]
    if recipient == '' then recipient = nil end
    redis.call('HSET', KEYS[2], id, cjson.encode(
      {line = tonumber(ARGV[5 + 3 * i]), recipient = recipient, attempts = 0}))
  end
  redis.call('HSET', KEYS[1], id, 'pending')
  redis.call('HINCRBY', KEYS[3], 'pending', 1)
end
redis.call('XADD', KEYS[4], '*', 'data', ARGV[1])
return n
"""

# KEYS: state, details, counts. ARGV: id, resend unknown ('1' or '0'), now, error.
# A pending row goes in flight (and is to be sent: 'send'). A row found in flight was
# being sent by a worker that stopped before recording it: it may have arrived, so it
# becomes unknown ('unknown'), or is sent again when the campaign resends unknown rows.
# Any other state is returned as it is: nothing to do.
CLAIM: Final = """
local st = redis.call('HGET', KEYS[1], ARGV[1])
if not st then return 'missing' end
if st ~= 'pending' and st ~= 'in_flight' then return st end
local d = cjson.decode(redis.call('HGET', KEYS[2], ARGV[1]))
local now = tonumber(ARGV[3])
local after = 'in_flight'
if st == 'in_flight' and ARGV[2] ~= '1' then
  after = 'unknown'
  d.error = ARGV[4]
  d.finished = now
else
  d.attempts = (d.attempts or 0) + 1
  d.started = now
end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(d))
redis.call('HSET', KEYS[1], ARGV[1], after)
redis.call('HINCRBY', KEYS[3], st, -1)
redis.call('HINCRBY', KEYS[3], after, 1)
if after == 'unknown' then return 'unknown' end
return 'send'
"""

# KEYS: state, details, counts. ARGV: id, state, now, code, reply, recipients (JSON),
# error; '' for none. Written only while the row is in flight: an outcome recorded
# twice (a retried command) or for a row another worker already settled changes nothing.
RECORD: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= 'in_flight' then return 0 end
local d = cjson.decode(redis.call('HGET', KEYS[2], ARGV[1]))
d.finished = tonumber(ARGV[3])
d.code = tonumber(ARGV[4])
if ARGV[5] ~= '' then d.reply = ARGV[5] else d.reply = nil end
if ARGV[6] ~= '' then d.recipients = cjson.decode(ARGV[6]) else d.recipients = nil end
if ARGV[7] ~= '' then d.error = ARGV[7] else d.error = nil end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(d))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'in_flight', -1)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
return 1
"""

# KEYS: lease. ARGV: token, milliseconds. Extends the lease only while it is ours.
LEASE_KEEP: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: token.
LEASE_DROP: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: the limit's key. ARGV: milliseconds between two sends. The generic cell rate
# algorithm, reserving: each call takes the next free slot (the theoretical arrival time,
# never in the past) and returns how many milliseconds away it is. Redis's own clock
# serves every worker, so theirs need not agree.
GCRA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.3f', tat + interval),
  'PX', math.ceil(tat + interval - now) + 60000)
return string.format('%.3f', tat - now)
"""

# KEYS: the stream. ARGV: the consumer group, milliseconds, count. Jobs delivered but not
# acknowledged for that long (their worker died, or failed them) are added to the stream
# again as new entries and the old ones acknowledged, in one step: a worker's next read
# gets them, whether or not other jobs arrive meanwhile. (taskiq-redis claims such jobs
# itself only after a read that brought new ones, so the tail of a campaign could wait for
# ever.) Entries trimmed away come back without fields: acknowledged, not copied.
REQUEUE: Final = """
local found = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], 'asmtp-requeue', ARGV[2], '0-0',
  'COUNT', ARGV[3])
local moved = 0
for _, entry in ipairs(found[2]) do
  if type(entry[2]) == 'table' then
    redis.call('XADD', KEYS[1], '*', unpack(entry[2]))
    moved = moved + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], entry[1])
end
return moved
"""
