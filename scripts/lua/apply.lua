-- apply.lua: an operator's command. (memStore.Apply)
-- ARGV[5] kind (1 reset, 2 force-open, 3 force-close), ARGV[6] override
-- TTL (us, 0: until reset), ARGV[7] 1: only if the circuit exists,
-- ARGV[8] actor, ARGV[9] reason (at most 1024 bytes each).
-- Reply: "unknown state generation from to tgen"; unknown = 1 when
-- ARGV[7] is 1 and the circuit has no state (nothing was written).
local m = memo()
if m then return m end

local kind = arg(5, 'command kind', 1, 3)
local ttl_us = arg(6, 'override TTL', 0, MAXDUR)
local if_exists = arg(7, 'if exists', 0, 1)
local actor, reason = ARGV[8], ARGV[9]
if type(actor) ~= 'string' or type(reason) ~= 'string' then
  error('TRIPLINE_BADARG actor and reason must be given', 0)
end
-- redisstore.MaxNoteLen: a note is kept with the circuit, so its size is bounded.
if #actor > 1024 or #reason > 1024 then
  error('TRIPLINE_BADARG actor and reason must be at most 1024 bytes', 0)
end
local now = now_us()
local ok, c = pcall(load, now)
if not ok then
  -- Only a reset may go on: it repairs a circuit whose data tripline
  -- cannot read by writing it again from scratch, one generation on if
  -- the generation is readable.
  if kind ~= 1 then error(c, 0) end
  local okg, g = pcall(redis.call, 'HGET', H, 'g')
  c = fresh()
  c.exists, c.purge = true, true
  if okg then c.g = num(g) or 0 end
end
if c.g >= MAXNUM and kind == 1 then
  -- The last exact generation (hand-written data): no transition can
  -- follow it, so a reset starts the circuit over, as if it had expired.
  c = fresh()
  c.exists, c.purge = true, true
end
if if_exists == 1 and not c.exists then
  return reply(c, { 1, 0, 0, 0, 0, 0 })
end

local causes = { 'reset', 'force-open', 'force-close' }
local to = 0
if kind == 2 then to = 1 end
transition(c, to, causes[kind])
if kind ~= 1 then
  c.om = kind - 1 -- 1 force-open, 2 force-close
  c.ou, c.oat, c.oac, c.ore = 0, now, actor, reason
  if ttl_us > 0 then c.ou = now + ttl_us end
  if kind == 2 then c.oa, c.ra = now, c.ou end
end
save(c, now, 0)
local f1, f2, f3 = tr_fields(c)
return reply(c, { 0, c.st, c.g, f1, f2, f3 })
