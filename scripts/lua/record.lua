-- record.lua: count the outcome of an admitted call. (memStore.Record)
-- ARGV[5..10] the policy (see lib.lua), ARGV[11] kind (1 success,
-- 2 failure), ARGV[12] the call's generation, ARGV[13] its probe id,
-- ARGV[14] reset first (1: a closed, consecutive-mode failure zeroes the
-- count before it counts itself; the success that reset it was not sent).
-- Reply: "ignored state generation from to tgen failures retry_after_us
-- override" (tgen = 0: no transition; failures, retry_after_us and
-- override as in admit.lua), so the caller learns the circuit's state.
local m = memo()
if m then return m end

local p = policy()
local kind = arg(11, 'outcome kind', 1, 2)
local gen = arg(12, 'generation', 0, MAXNUM)
local probe = arg(13, 'probe', 0, MAXNUM)
local reset_first = arg(14, 'reset first', 0, 1)
local now = now_us()
local c = load(now)

if not c.exists and (gen ~= 0 or kind == 1) then
  -- A success on a circuit with no state changes nothing.
  local ignored = 0
  if gen ~= 0 then ignored = 1 end
  return reply(c, { ignored, 0, 0, 0, 0, 0, 0, 0, 0 })
end

local dirty = c.lw ~= p.window
c.lw = p.window

local function done(ignored)
  if dirty then save(c, now, p.probe_timeout) end
  local f1, f2, f3 = tr_fields(c)
  return reply(c, { ignored, c.st, c.g, f1, f2, f3, c.f, retry_after(c, now), c.om })
end

if gen ~= c.g then
  return done(1)
end

if c.st == 0 then
  if kind == 1 then
    -- Window mode: successes erase nothing (f is unused there).
    if c.f ~= 0 then
      c.f = 0
      dirty, c.changed = true, true
    end
    return done(0)
  end
  c.lf = now
  c.changed, dirty = true, true
  local count
  if p.window == 0 then
    if reset_first == 1 then c.f = 0 end
    c.f = c.f + 1
    count = c.f
  else
    -- Only the newest FailureThreshold failures can decide a trip: the
    -- window keeps those, and counts the ones after now - window.
    local from = now - p.window
    count = 1 -- this failure
    if p.threshold > 1 then
      local kept = redis.call('ZRANGE', W, fmt(-(p.threshold - 1)), '-1', 'WITHSCORES')
      for i = 2, #kept, 2 do
        if tonumber(kept[i]) > from then count = count + 1 end
      end
    end
    c.seq = c.seq + 1
    c.failure = { c.seq, now }
    c.keep = p.threshold
  end
  if count < p.threshold then
    return done(0)
  end
  if c.om == 2 then
    return done(0) -- counted, but a forced-closed circuit does not trip
  end
  open(c, now, p.timeout)
  return done(0)
end

if c.st == 2 then
  local exp = nil
  if probe ~= 0 then exp = redis.call('ZSCORE', P, fmt(probe)) end
  if not exp or tonumber(exp) <= now then
    return done(1) -- a lapsed or unknown probe permit
  end
  redis.call('ZREM', P, fmt(probe))
  c.released, c.changed, dirty = true, true, true
  if kind == 2 then
    c.lf = now
    open(c, now, p.timeout)
  else
    c.s = c.s + 1
    if c.s >= p.successes then
      transition(c, 0, 'outcome')
    end
  end
  return done(0)
end

-- Open: no call is admitted in an open generation.
return done(1)
