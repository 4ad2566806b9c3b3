-- lib.lua: the part every tripline script shares. Package lua prepends it
-- to admit.lua, record.lua, apply.lua and load.lua; it is not a script on
-- its own. The state machine is breaker/memstore.go's, step for step.
--
-- One circuit's keys, all in one hash slot (KEYS):
--   KEYS[1]  state hash: st g f s lf oa ra lw seq [pol] [om ou oat oac ore]
--            (seq numbers every failure counted in closed state and every
--            probe lease: the ids, and what a held-back reset clears; pol
--            is the policy of the last admit or record that wrote, as
--            "threshold window_us timeout_us successes probes
--            probe_timeout_us", so a replica with other settings is told)
--   KEYS[2]  failure window, sorted set: member = sequence number,
--            score = failure time; a failure keeps only the failures
--            within the window, at most the newest FailureThreshold, and
--            the key lives as long as the window
--   KEYS[3]  probe leases, sorted set: member = probe id, score = expiry
--   KEYS[4]  reply memo of this call (write scripts): the reply of a call
--            that changed state, kept briefly so that a retried call (same
--            call id, same key) gets the same answer and changes nothing
-- Times are microseconds of Redis TIME, never the client's clock. Numbers
-- are written as decimal strings (fmt), never as Lua numbers, so no server
-- version can print one in exponent form.
--
-- Errors are raised before the first write (Redis has no rollback):
--   TRIPLINE_BADARG    an argument the Go side should have refused
--   TRIPLINE_CORRUPT   a field of the circuit that no tripline script wrote

if redis.replicate_commands then redis.replicate_commands() end

local H, W, P, R = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- Durations beyond this (100 years, in microseconds) are clamped by the Go
-- side; scores beyond now + MAXDUR are foreign and ignored.
local MAXDUR = 3153600000000000
-- 2^53 - 1: larger integers are not exact. breaker.MaxCount bounds the
-- policy's counts by the same number, breaker.MaxFailureThreshold the
-- threshold by MAXTHRESHOLD.
local MAXNUM = 9007199254740991
local MAXTHRESHOLD = 100000

local function fmt(n) return string.format('%.0f', n) end

-- num parses a non-negative decimal integer; false (a missing field) is 0.
-- It returns nil for anything else ("1e3", " 1", "0x1", "-1", "nan").
local function num(v)
  if v == false or v == nil then return 0 end
  if type(v) ~= 'string' or #v == 0 or #v > 16 or not string.match(v, '^%d+$') then
    return nil
  end
  local n = tonumber(v)
  if n > MAXNUM then return nil end
  return n
end

-- quote shows a value in an error message: at most 40 bytes, control
-- characters (an error reply cannot hold CR or LF) as '?'.
local function quote(v)
  v = tostring(v)
  if #v > 40 then v = string.sub(v, 1, 40) .. '...' end
  return '"' .. string.gsub(v, '[%c"]', '?') .. '"'
end

local function field(v, name, max)
  local n = num(v)
  if n == nil or n > max then
    error('TRIPLINE_CORRUPT field ' .. name .. ' of ' .. quote(H) .. ' is ' .. quote(v), 0)
  end
  return n
end

local function arg(i, name, min, max)
  local n = num(ARGV[i])
  if ARGV[i] == nil or n == nil or n < min or n > max then
    error('TRIPLINE_BADARG ' .. name .. ' (ARGV[' .. i .. ']) is ' .. quote(ARGV[i]), 0)
  end
  return n
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Common arguments: ARGV[1] pub/sub channel, ARGV[2] encoded circuit name
-- (for events), ARGV[3] idle TTL (us), ARGV[4] reply memo TTL (ms).
local CHANNEL, ENC = ARGV[1], ARGV[2]
if type(CHANNEL) ~= 'string' or #CHANNEL == 0 or type(ENC) ~= 'string' or #ENC == 0 then
  error('TRIPLINE_BADARG channel and name must be given', 0)
end
local IDLE = arg(3, 'idle TTL', 1000, MAXDUR)
local MEMO = arg(4, 'memo TTL', 1, MAXDUR)

-- fresh is a circuit with no state: closed, generation 0.
local function fresh()
  return { exists = false, st = 0, g = 0, f = 0, s = 0, lf = 0, oa = 0, ra = 0, lw = 0,
    seq = 0, om = 0, ou = 0, oat = 0, oac = '', ore = '', pol = '', hadov = false }
end

-- load reads the circuit. A missing hash is a closed circuit, generation 0.
-- An override whose time is up is dropped here (it is rewritten, or left
-- to lapse, by the next write).
local function load(now)
  local v = redis.call('HMGET', H, 'st', 'g', 'f', 's', 'lf', 'oa', 'ra', 'lw', 'seq',
    'om', 'ou', 'oat', 'oac', 'ore', 'pol')
  local c = fresh()
  for i = 1, 14 do
    if v[i] then c.exists = true end
  end
  c.st = field(v[1], 'st', 2)
  c.g = field(v[2], 'g', MAXNUM)
  c.f = field(v[3], 'f', MAXNUM)
  c.s = field(v[4], 's', MAXNUM)
  c.lf = field(v[5], 'lf', MAXNUM)
  c.oa = field(v[6], 'oa', MAXNUM)
  c.ra = field(v[7], 'ra', MAXNUM)
  c.lw = field(v[8], 'lw', MAXDUR)
  c.seq = field(v[9], 'seq', MAXNUM)
  c.om = field(v[10], 'om', 2)
  c.ou = field(v[11], 'ou', MAXNUM)
  c.oat = field(v[12], 'oat', MAXNUM)
  c.oac = v[13] or ''
  c.ore = v[14] or ''
  c.pol = v[15] or ''
  c.hadov = v[10] ~= false or v[11] ~= false or v[12] ~= false or v[13] ~= false or v[14] ~= false
  if c.om ~= 0 and c.ou ~= 0 and now >= c.ou then
    c.om, c.ou, c.oat, c.oac, c.ore = 0, 0, 0, '', ''
  end
  return c
end

-- transition moves the circuit to a new generation in state to, clearing
-- every counter, lease and the override (apply sets its override after)
-- and RetryAt (open sets it after). OpenedAt survives into half-open;
-- closing clears it and LastFailure too. A circuit at the last exact
-- generation cannot move on: that is hand-written data, refused before any
-- write (a reset starts such a circuit over, see apply.lua).
local function transition(c, to, cause)
  if c.g >= MAXNUM then
    error('TRIPLINE_CORRUPT field g of ' .. quote(H) .. ' is ' .. fmt(c.g) .. ', the last generation', 0)
  end
  c.tr = { from = c.st, to = to, g = c.g + 1, cause = cause }
  c.st, c.g, c.f, c.s = to, c.g + 1, 0, 0
  c.om, c.ou, c.oat, c.oac, c.ore = 0, 0, 0, '', ''
  c.ra = 0
  if to == 0 then c.oa, c.lf = 0, 0 end
  c.failure = nil
  c.clear = true
  c.changed = true
end

local function open(c, now, timeout)
  transition(c, 1, 'outcome')
  c.oa, c.ra = now, now + timeout
end

-- next_seq numbers a failure or a lease. It wraps to 1 rather than write
-- a number load refuses (2^53 numbers: only hand-written data gets there).
local function next_seq(c)
  if c.seq >= MAXNUM then c.seq = 0 end
  c.seq = c.seq + 1
  return c.seq
end

-- clear_to clears the consecutive failures counted up to failure sequence
-- number known: a held-back reset stands for a success that came when its
-- replica had heard of no failure after known, so it keeps every failure
-- numbered after it. A sequence behind known (the circuit expired, or was
-- lost, and started over) tells nothing: the count is kept.
local function clear_to(c, known)
  if c.seq >= known then c.f = math.min(c.f, c.seq - known) end
end

-- ttl is how long the circuit's keys live after this write (ms): the idle
-- TTL, plus the window while failures may be in it, plus the probe timeout
-- while half-open; an open circuit lives until RetryAt + idle, an override
-- until its end + idle.
local function ttl(c, now, probe_timeout)
  local t = IDLE + c.lw
  if c.st == 2 then t = t + probe_timeout end
  if c.st == 1 and c.ra > now then t = math.max(t, c.ra - now + IDLE) end
  if c.om ~= 0 and c.ou > now then t = math.max(t, c.ou - now + IDLE) end
  return fmt(math.ceil(t / 1000))
end

-- save writes the whole circuit. It deletes a damaged circuit's keys
-- (c.purge: a reset that could not read them) or clears the window and
-- leases after a transition; releases the probe lease c.release; adds the
-- failure (c.failure = {member, time}) and the probe lease (c.lease = {id,
-- expiry}) the call made; trims the window to the failures within it
-- (c.window) and to the newest c.keep of those; sets every written key's
-- TTL; and publishes the transition: "1 <name> <from> <to> <generation>
-- <time> <cause> <retry at>" (retry at: 0 unless the circuit is open with
-- an end). Each window command costs O(log n) plus what it removes.
local function save(c, now, probe_timeout)
  if c.purge then
    redis.call('DEL', H, W, P)
  elseif c.clear then
    redis.call('DEL', W, P)
  end
  if c.release and not c.clear then
    redis.call('ZREM', P, fmt(c.release))
  end
  if c.failure then
    -- ZADD first: over maxmemory (noeviction) Redis refuses a script's
    -- first write only if it may grow memory, and then nothing is counted.
    redis.call('ZADD', W, fmt(c.failure[2]), fmt(c.failure[1]))
    redis.call('ZREMRANGEBYSCORE', W, '-inf', fmt(now - c.window))
    redis.call('ZREMRANGEBYSCORE', W, '(' .. fmt(now), '+inf')
    redis.call('ZREMRANGEBYRANK', W, '0', fmt(-(c.keep + 1)))
  end
  if c.lease then
    redis.call('ZADD', P, fmt(c.lease[2]), fmt(c.lease[1]))
  end
  redis.call('HSET', H, 'st', fmt(c.st), 'g', fmt(c.g), 'f', fmt(c.f), 's', fmt(c.s),
    'lf', fmt(c.lf), 'oa', fmt(c.oa), 'ra', fmt(c.ra), 'lw', fmt(c.lw), 'seq', fmt(c.seq))
  if c.pol ~= '' then redis.call('HSET', H, 'pol', c.pol) end
  if c.om ~= 0 then
    redis.call('HSET', H, 'om', fmt(c.om), 'ou', fmt(c.ou), 'oat', fmt(c.oat),
      'oac', c.oac, 'ore', c.ore)
  elseif c.hadov then
    redis.call('HDEL', H, 'om', 'ou', 'oat', 'oac', 'ore')
  end
  local ms = ttl(c, now, probe_timeout)
  redis.call('PEXPIRE', H, ms)
  -- The newest failure counts until now + window: the window may go then
  -- (a millisecond later, as expiry has milliseconds).
  if c.failure then redis.call('PEXPIRE', W, fmt(math.ceil(c.window / 1000) + 1)) end
  if c.lease or (c.release and not c.clear) then redis.call('PEXPIRE', P, ms) end
  if c.tr then
    redis.call('PUBLISH', CHANNEL, '1 ' .. ENC .. ' ' .. c.tr.from .. ' ' .. c.tr.to .. ' ' ..
      fmt(c.tr.g) .. ' ' .. fmt(now) .. ' ' .. c.tr.cause .. ' ' .. fmt(c.ra))
  end
end

-- reply joins the fields of a reply into one string, remembered under R
-- when the call changed the circuit.
local function reply(c, fields)
  for i = 1, #fields do fields[i] = fmt(fields[i]) end
  local r = table.concat(fields, ' ')
  if c.changed and R then
    redis.call('SET', R, r, 'PX', fmt(MEMO))
  end
  return r
end

local function tr_fields(c)
  if c.tr then return c.tr.from, c.tr.to, c.tr.g end
  return 0, 0, 0
end

-- retry_after is how long (us) an open circuit rejects calls from now: to
-- the end of a ForceOpen TTL, or to RetryAt; 0 if a probe is due now, if
-- the circuit is not open, or if it is forced open without expiry (the
-- override mode, sent beside it, tells these apart).
local function retry_after(c, now)
  if c.st ~= 1 then return 0 end
  if c.om == 1 then
    if c.ou ~= 0 then return c.ou - now end
    return 0
  end
  return math.max(c.ra - now, 0)
end

-- memo returns the remembered reply of this call, if it already ran.
local function memo()
  if R then
    local m = redis.call('GET', R)
    if m then return m end
  end
  return nil
end

-- policy reads a breaker.Policy from ARGV[5..10] (durations in us), with
-- the bounds of breaker.Policy.Validate. Its text is the pol field.
local function policy()
  local p = {
    threshold = arg(5, 'FailureThreshold', 1, MAXTHRESHOLD),
    window = arg(6, 'FailureWindow', 0, MAXDUR),
    timeout = arg(7, 'Timeout', 1000, MAXDUR),
    successes = arg(8, 'SuccessThreshold', 1, MAXNUM),
    probes = arg(9, 'HalfOpenMaxCalls', 1, MAXNUM),
    probe_timeout = arg(10, 'ProbeTimeout', 1000, MAXDUR),
  }
  p.text = table.concat({ fmt(p.threshold), fmt(p.window), fmt(p.timeout), fmt(p.successes),
    fmt(p.probes), fmt(p.probe_timeout) }, ' ')
  return p
end

-- use_policy makes p the circuit's policy, as admit and record do before
-- they decide. It returns whether the circuit must be written even if
-- nothing else changes (its policy or window is not p's), and the reply's
-- last field: 1 when the circuit was last written under another policy
-- (another replica's settings), 0 when under p or none is kept. Load
-- counts failures in the window of the policy last used (lw).
local function use_policy(c, p)
  local dirty = c.lw ~= p.window or c.pol ~= p.text
  local differs = 0
  if c.pol ~= '' and c.pol ~= p.text then differs = 1 end
  c.lw, c.pol = p.window, p.text
  return dirty, differs
end
