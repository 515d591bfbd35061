-- POST /api/v1/deviations with a ~500-byte report, a new title each time.
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local desc = string.rep("Ett mejl med personuppgifter skickades till fel mottagare. ", 8)
request = function()
  counter = counter + 1
  local body = '{"title":"Felskickad e-post ' .. counter .. '","description":"' .. desc ..
    '","sector":"Socialtjänsten","personal_data":true}'
  return wrk.format(nil, "/api/v1/deviations", nil, body)
end
