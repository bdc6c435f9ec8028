# Opens and runs the notebook BEFORE the server listens, then prints READY: an open port means an executed notebook,
# and /edit?id=NOTEBOOK_ID is a stable deep link. (Plain `Pluto.run(notebook=...)` listens while cells still run.)
import Pluto
import UUIDs: UUID

const NOTEBOOK = get(ENV, "NOTEBOOK", "/app/webapp.jl")
# Fixed, so that every instance answers the same deep link; warmpool.yaml names it.
const NOTEBOOK_ID = UUID(get(ENV, "NOTEBOOK_ID", "6b1e7f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"))
const PORT = parse(Int, get(ENV, "PORT", "1234"))
# The proxy generates one secret per instance, passes it here and adds it to every request it forwards, so nobody
# who bypasses the proxy gets in. Without PLUTO_SECRET the app is open (Pluto's public-deployment flags).
const SECRET = get(ENV, "PLUTO_SECRET", "")

options = Pluto.Configuration.from_flat_kwargs(;
    host = "0.0.0.0",
    port = PORT,
    launch_browser = false,
    dismiss_update_notification = true,
    disable_writing_notebook_files = true,  # every visitor gets a fresh copy; nothing to save
    require_secret_for_access = !isempty(SECRET),
    require_secret_for_open_links = !isempty(SECRET),
)
session = isempty(SECRET) ? Pluto.ServerSession(; options) : Pluto.ServerSession(; options, secret = SECRET)

# run_async=false: returns only when every cell has run.
notebook = Pluto.SessionActions.open(session, NOTEBOOK; run_async = false, notebook_id = NOTEBOOK_ID)

if get(ENV, "PLUTO_WARMUP", "") == "1"
    # Build-time run (Dockerfile): packages are now installed and precompiled; do not serve.
    Pluto.SessionActions.shutdown(session, notebook)
    exit(0)
end

println("READY")
flush(stdout)
Pluto.run(session)
