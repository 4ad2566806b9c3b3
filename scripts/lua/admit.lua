-- admit.lua: may one call on the circuit run now? (memStore.Admit)
-- ARGV[5..10] the policy (see lib.lua).
-- Reply: "allowed state generation probe retry_after_us from to tgen
-- failures override seq differs", where tgen = 0 means no transition,
-- failures is the consecutive failure count (0 in window mode), override
-- the override mode (0 none, 1 force-open, 2 force-close), seq the
-- circuit's failure sequence number (see record.lua): a replica's local
-- view of the circuit is refreshed from it; differs is 1 when the circuit
-- was last written under another policy (lib.lua use_policy).
local m = memo()
if m then return m end

local p = policy()
local now = now_us()
local c = load(now)
if not c.exists then
  return reply(c, { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })
end

local dirty, differs = use_policy(c, p)

-- finish writes the circuit if only its policy changed, and refreshes the
-- TTL of an override without an end (it lives as long as someone asks)
-- once half of it is gone.
local function finish()
  if dirty then save(c, now, p.probe_timeout) end
  if c.om ~= 0 and c.ou == 0 then
    local left = redis.call('PTTL', H)
    if left >= 0 and left * 1000 < IDLE / 2 then
      redis.call('PEXPIRE', H, ttl(c, now, p.probe_timeout))
    end
  end
end

if c.st == 0 then
  finish()
  return reply(c, { 1, 0, c.g, 0, 0, 0, 0, 0, c.f, c.om, c.seq, differs })
end

if c.st == 1 then
  if c.om == 1 then
    finish()
    return reply(c, { 0, 1, c.g, 0, retry_after(c, now), 0, 0, 0, 0, 1, c.seq, differs })
  end
  if now < c.ra then
    finish()
    return reply(c, { 0, 1, c.g, 0, c.ra - now, 0, 0, 0, 0, 0, c.seq, differs })
  end
  transition(c, 2, 'timeout')
end

-- Half-open: lease a probe permit if a slot is free. A lease at or past
-- its expiry has lapsed; a score beyond any probe timeout is foreign.
local held, first = 0, nil
if not c.clear then
  local live = redis.call('ZRANGEBYSCORE', P, '(' .. fmt(now), fmt(now + MAXDUR), 'WITHSCORES')
  held = #live / 2
  if held > 0 then first = tonumber(live[2]) end
end
local f1, f2, f3 = tr_fields(c)
if held >= p.probes then
  finish()
  return reply(c, { 0, 2, c.g, 0, first - now, f1, f2, f3, 0, c.om, c.seq, differs })
end
if not c.clear then
  redis.call('ZREMRANGEBYSCORE', P, '-inf', fmt(now))
  redis.call('ZREMRANGEBYSCORE', P, '(' .. fmt(now + MAXDUR), '+inf')
end
c.lease = { next_seq(c), now + p.probe_timeout }
c.changed = true
save(c, now, p.probe_timeout)
return reply(c, { 1, 2, c.g, c.seq, 0, f1, f2, f3, 0, c.om, c.seq, differs })
