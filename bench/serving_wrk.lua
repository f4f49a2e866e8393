-- wrk script: GET /users/{random user}/recommendations?k=10 over the ids in users.txt (one per line).
-- Usage: wrk -t2 -c50 -d20s --latency -s bench/serving_wrk.lua http://127.0.0.1:8000 -- users.txt
local users = {}

function init(args)
  for line in io.lines(args[1]) do
    users[#users + 1] = line
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  local user = users[math.random(#users)]
  return wrk.format("GET", "/users/" .. user .. "/recommendations?k=10")
end
