-- The producer of a bounded ring in shared memory (docs/lua-api.md "cella.ipc").
--
-- It makes the ring (SLOTS slots of SLOT bytes, each a u32 length and the bytes)
-- and two counting semaphores, `space` (free slots, SLOTS at first) and `items`
-- (full slots), and passes a handle of each to the consumer, which takes them
-- with ipc.accept: the ring read-only ("r": a handle passed on can only narrow),
-- the semaphores "rw". Then it writes COUNT records and a last one of length 0,
-- the end. Each wait suspends only this task; the memory is mapped in both apps,
-- so a record is written once and read in place (no copy through the kernel).
local ipc = require('cella.ipc')
local app = require('cella.app')

local ME, PEER = 'org.cella.example.ipc_producer', 'org.cella.example.ipc_consumer'
local SLOTS, SLOT = 16, 256
local COUNT = tonumber((...)) or 1000

local ring = ipc.shm.create(ME .. '.ring', SLOTS * SLOT)
local space = ipc.sem.create(ME .. '.space', SLOTS)
local items = ipc.sem.create(ME .. '.items', 0)
ring:pass(PEER, 'r')
space:pass(PEER, 'rw')
items:pass(PEER, 'rw')

local function put(i, s)
  assert(space:wait(30), 'the consumer took no record for 30 s')
  local at = (i % SLOTS) * SLOT
  ring:set_u32(at + 4, #s) -- the bytes first...
  ring:write(at + 8, s)
  ring:set_u32(at, i)      -- ...then the record's number (a release store)
  items:post()
end

for i = 1, COUNT do
  put(i, string.format('record %d from %s', i, app.id()))
end
put(COUNT + 1, '')
print(string.format('producer: wrote %d records through %s', COUNT, ring:info().name))
