-- record.lua: count the outcome of an admitted call. (memStore.Record)
-- ARGV[5..10] the policy (see lib.lua), ARGV[11] kind (1 success,
-- 2 failure), ARGV[12] the call's generation, ARGV[13] its probe id,
-- ARGV[14] reset first: 1 when the call carries a reset its replica held
-- back for a success (a success: that reset; a failure: the reset, then
-- the failure), in closed state and consecutive mode; ARGV[15] the failure
-- sequence number (seq) the replica had learned when that success came:
-- the reset clears only the failures counted up to it (lib.lua clear_to),
-- so a replica that holds a reset back never clears failures counted after
-- the success. A success sent as it comes (reset first 0) clears them all.
-- Reply: "ignored state generation from to tgen failures retry_after_us
-- override seq differs" (tgen = 0: no transition; failures,
-- retry_after_us, override, seq and differs as in admit.lua), so the
-- caller learns the circuit.
local m = memo()
if m then return m end

local p = policy()
local kind = arg(11, 'outcome kind', 1, 2)
local gen = arg(12, 'generation', 0, MAXNUM)
local probe = arg(13, 'probe', 0, MAXNUM)
local reset_first = arg(14, 'reset first', 0, 1)
local known = arg(15, 'known failure sequence', 0, MAXNUM)
local now = now_us()
local c = load(now)

if not c.exists and (gen ~= 0 or kind == 1) then
  -- A success on a circuit with no state changes nothing.
  local ignored = 0
  if gen ~= 0 then ignored = 1 end
  return reply(c, { ignored, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })
end

local dirty, differs = use_policy(c, p)

local function done(ignored)
  if dirty then save(c, now, p.probe_timeout) end
  local f1, f2, f3 = tr_fields(c)
  return reply(c, { ignored, c.st, c.g, f1, f2, f3, c.f, retry_after(c, now), c.om, c.seq, differs })
end

if gen ~= c.g then
  return done(1)
end

if c.st == 0 then
  local f = c.f
  if kind == 1 then
    -- Window mode: successes erase nothing (f is unused there).
    if reset_first == 1 then clear_to(c, known) else c.f = 0 end
    if c.f ~= f then
      dirty, c.changed = true, true
    end
    return done(0)
  end
  c.lf = now
  c.changed, dirty = true, true
  if reset_first == 1 then clear_to(c, known) end
  local seq = next_seq(c)
  local count
  if p.window == 0 then
    c.f = math.min(c.f + 1, MAXNUM)
    count = c.f
  else
    -- The failures within the window, this one included; a time later
    -- than now is not one a script wrote (save drops it). The window holds
    -- at most the newest FailureThreshold: more never decide anything.
    count = redis.call('ZCOUNT', W, '(' .. fmt(now - p.window), fmt(now)) + 1
    c.failure = { seq, now }
    c.window, c.keep = p.window, p.threshold
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
  c.release, c.changed, dirty = probe, true, true
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
