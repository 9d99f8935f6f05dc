# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_agenttrust_global_optspecs
    string join \n profile= url= o/output= jq= timeout= insecure ca-cert= config-dir= no-input q/quiet v/verbose color= wide h/help V/version
end

function __fish_agenttrust_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_agenttrust_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_agenttrust_using_subcommand
    set -l cmd (__fish_agenttrust_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c agenttrust -n "__fish_agenttrust_needs_command" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_needs_command" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_needs_command" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_needs_command" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_needs_command" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_needs_command" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_needs_command" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_needs_command" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_needs_command" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "login" -d 'Validate an API key against the gateway and save it in a profile'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "profile" -d 'Manage profiles (list, show, use, delete, import)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "status" -d 'Show the profile in use, the gateway\'s health and whether the API key works'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "health" -d 'Check the gateway\'s health'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "version" -d 'Print this CLI\'s version and the gateway\'s (when it answers; never fails)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "agents" -d 'Register, list, inspect and revoke agents'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "tokens" -d 'Issue, introspect and revoke agent tokens'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "actions" -d 'Check an action against policy (exit 0 allowed, 77 denied, 75 elevation required)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "telemetry" -d 'Report and list telemetry events'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "sessions" -d 'Open, inspect, list, re-mode and unlock agent sessions'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "approvals" -d 'List, approve, deny and wait for approvals (elevation)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "guard" -d 'The runtime seatbelt for shell-scripted agents: check, run, report (exit codes are the API)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "policies" -d 'Get, set, validate (offline) and test the org\'s policy'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "delegations" -d 'Delegate capabilities between agents: create, list, get, revoke, open a session, tree'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "federation" -d 'Federation: trust external OIDC issuers (providers, subject links), verify and issue ID tokens, open sessions from them'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "streaming" -d 'Stream the audit log to SIEMs (Splunk HEC, Datadog, Elasticsearch, signed webhooks): destinations, delivery logs, test deliveries'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "mcp" -d 'MCP: register MCP servers, list the tools an agent may call there, call one through the gateway (checked by the Guardian)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "cards" -d 'Agent cards (A2A): generate, get, publish and unpublish an agent\'s signed card; verify any card against its issuer\'s keys'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "a2a" -d 'Agent-to-agent messages through the gateway (checked by the Guardian): send, and the tasks waiting for their target'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "keys" -d 'Manage org API keys'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "orgs" -d 'The org\'s security settings: proof of possession, sender-constrained tokens'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "audit" -d 'Read the org\'s audit log and verify its hash chain'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "api" -d 'Send a raw request to the gateway with the profile\'s URL and key (like `gh api`)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "bench" -d 'Measure the gateway under load: checks, introspections, token issues, telemetry, each beside /health (like pgbench)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "man" -d 'Print a man page (`agenttrust man agents list | man -l -`)'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "server" -d 'Run the embedded AgentTrust-compatible gateway'
complete -c agenttrust -n "__fish_agenttrust_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l api-key-stdin -d 'Read the API key from stdin instead of prompting'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l set-default -d 'Make this profile the default (the first profile saved always becomes the default)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand login" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -f -a "list" -d 'List profiles (`*` marks the default)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -f -a "show" -d 'Show a profile\'s settings, secrets masked [default: the profile in use]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -f -a "use" -d 'Make a profile the default'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -f -a "set" -d 'Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure, ca_cert (the API key is set with `agenttrust login`, which checks it)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -f -a "rename" -d 'Rename a profile (its key and its place as the default go with it)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -f -a "delete" -d 'Delete a profile and its credentials (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -f -a "import" -d 'Import the SDK\'s JSON config file (base_url, auth_url, api_key[, audit_url, timeout]) into the profile named by --profile (default `default`)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and not __fish_seen_subcommand_from list show use set rename delete import help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l show-secrets -d 'Show the API key in full'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from use" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from rename" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l set-default -d 'Make the profile the default'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from import" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "list" -d 'List profiles (`*` marks the default)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a profile\'s settings, secrets masked [default: the profile in use]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "use" -d 'Make a profile the default'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "set" -d 'Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure, ca_cert (the API key is set with `agenttrust login`, which checks it)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "rename" -d 'Rename a profile (its key and its place as the default go with it)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a profile and its credentials (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "import" -d 'Import the SDK\'s JSON config file (base_url, auth_url, api_key[, audit_url, timeout]) into the profile named by --profile (default `default`)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand status" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand health" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand version" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -f -a "create" -d 'Register an agent'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -f -a "list" -d 'List the org\'s agents, oldest first (`--all` follows every page)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -f -a "get" -d 'Show one agent'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -f -a "revoke" -d 'Revoke an agent and every live token of it (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -f -a "mode" -d 'Set the agent\'s own mode, binding it in every session: standard, read_only or locked'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -f -a "unlock" -d 'Unlock an agent locked by an admin or by the agent-level lockout'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -f -a "keys" -d 'The agent\'s Ed25519 key (proof of possession, DPoP)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and not __fish_seen_subcommand_from create list get revoke mode unlock keys help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l name -d 'Agent name (unique in the org)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l framework -d 'Framework the agent runs on [default: custom]' -r -f -a "openai\t''
anthropic\t''
langchain\t''
crewai\t''
autogen\t''
custom\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l capabilities -d 'Capabilities: comma-separated or repeated (files:read,web:fetch)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l metadata -d 'Free-form metadata as a JSON object' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l generate-key -d 'Make an Ed25519 key pair here and register its public half; the private half is kept in the profile\'s agent-key folder (0600), where `guard` and `actions check` find it'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l print-private-key -d 'Print the private key (PKCS#8 PEM) once instead of keeping it in the profile\'s agent-key folder'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l status -d 'Only agents with this status' -r -f -a "active\t''
suspended\t''
revoked\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l name-prefix -d 'Only agents whose name starts with this text' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l limit -d 'Items per page, 1-1000 (with --all, per request) [default: the gateway\'s, 100]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l cursor -d 'Start at this cursor (the `next_cursor` of a previous page)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l all -d 'Follow `next_cursor` until the last page'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l reason -d 'Why (recorded in the audit log)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from mode" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from unlock" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -f -a "rotate" -d 'Make a new key pair here and register its public half; the previous key keeps working for the grace period'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from keys" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "create" -d 'Register an agent'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the org\'s agents, oldest first (`--all` follows every page)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show one agent'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke an agent and every live token of it (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "mode" -d 'Set the agent\'s own mode, binding it in every session: standard, read_only or locked'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "unlock" -d 'Unlock an agent locked by an admin or by the agent-level lockout'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "keys" -d 'The agent\'s Ed25519 key (proof of possession, DPoP)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -f -a "issue" -d 'Issue a token for an agent (`-q` prints only the token)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -f -a "introspect" -d 'Ask the gateway whether a token is active'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -f -a "list" -d 'List tokens (active ones unless --include-inactive; never the secrets, which the gateway does not keep)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -f -a "revoke" -d 'Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and not __fish_seen_subcommand_from issue introspect list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l scopes -d 'Scopes: comma-separated or repeated' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l ttl -d 'Lifetime: 300, 300s, 5m, 1h [default: the gateway\'s, 5m]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l session -d 'Bind the token to a session [env: AGENTTRUST_SESSION_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from issue" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l target -d 'Where the token is being presented (e.g. mcp://filesystem)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l required-scopes -d 'Scopes the token must carry: comma-separated or repeated' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from introspect" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l agent -d 'Only this agent\'s tokens (id or name)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l limit -d 'Tokens per page (1-1000) [default: the gateway\'s, 100]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l cursor -d 'Start at this cursor (the `next_cursor` of a previous page)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l include-inactive -d 'Also revoked and expired tokens, and those of inactive agents'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l all -d 'Follow `next_cursor` until the last page'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l id -d 'Revoke the token with this id instead (admin key)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l reason -d 'Why (recorded in the audit log)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from help" -f -a "issue" -d 'Issue a token for an agent (`-q` prints only the token)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from help" -f -a "introspect" -d 'Ask the gateway whether a token is active'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tokens (active ones unless --include-inactive; never the secrets, which the gateway does not keep)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand tokens; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Check a tool call against policy'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token\'s agent]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l tool -d 'The tool (action) name (may also be given positionally, without --tool)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l input -d 'A summary of the tool\'s input (cut to 200 characters)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l effect -d 'What the call does [default: classified by the gateway]' -r -f -a "read\t''
mutating\t''
write\t''
destructive\t''
admin\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l session -d 'Session id [env: AGENTTRUST_SESSION_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from help" -f -a "check" -d 'Check a tool call against policy'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand actions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -f -a "report" -d 'Report one event (e.g. tool_end after a tool ran)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -f -a "list" -d 'List stored events, oldest first (`--all` follows every page)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and not __fish_seen_subcommand_from report list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l session -d 'Session id [env: AGENTTRUST_SESSION_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l event-type -d 'Event type (the SDKs\' names; a typo would be stored as an event nobody reads)' -r -f -a "tool_start\t''
tool_end\t''
tool_error\t''
task_start\t''
task_end\t''
step_start\t''
step_end\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l tool -d 'The tool\'s name' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l duration-ms -d 'How long the tool ran, in milliseconds' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l error-type -d 'The kind of error on failure (e.g. TimeoutError)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l success -d 'The tool succeeded [default: inferred from the event type]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l failure -d 'The tool failed'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from report" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l agent -d 'Only this agent\'s events (id or name)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l session -d 'Only this session\'s events' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l limit -d 'Items per page, 1-1000 (with --all, per request) [default: the gateway\'s, 100]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l cursor -d 'Start at this cursor (the `next_cursor` of a previous page)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l all -d 'Follow `next_cursor` until the last page'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from help" -f -a "report" -d 'Report one event (e.g. tool_end after a tool ran)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from help" -f -a "list" -d 'List stored events, oldest first (`--all` follows every page)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand telemetry; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -f -a "init" -d 'Open an MCP session of an agent with a server (`-q` prints the session id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -f -a "init-api" -d 'Open a session from an agent token: its agent and scope ceiling come from the token'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -f -a "get" -d 'Show one session: mode, scope ceiling, call counters'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -f -a "list" -d 'List the org\'s sessions, oldest first (`--all` follows every page; --watch)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -f -a "set-mode" -d 'Set a session\'s mode: standard, read_only, elevated or locked'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -f -a "unlock" -d 'Unlock a locked session (back to standard)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and not __fish_seen_subcommand_from init init-api get list set-mode unlock help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l server -d 'The MCP server\'s id (a server registered with `agenttrust mcp servers add`)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from init-api" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l agent -d 'Only this agent\'s sessions (id or name)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l mode -d 'Only sessions in this mode' -r -f -a "standard\t''
read_only\t''
elevated\t''
locked\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l source -d 'Only sessions from this source: sdk, mcp, api, a2a, federation' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l limit -d 'Items per page, 1-1000 (with --all, per request) [default: the gateway\'s, 100]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l cursor -d 'Start at this cursor (the `next_cursor` of a previous page)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l interval -d 'With --watch: time between polls, 1s to 1h' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l all -d 'Follow `next_cursor` until the last page'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -s w -l watch -d 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from set-mode" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from unlock" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "init" -d 'Open an MCP session of an agent with a server (`-q` prints the session id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "init-api" -d 'Open a session from an agent token: its agent and scope ceiling come from the token'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show one session: mode, scope ceiling, call counters'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the org\'s sessions, oldest first (`--all` follows every page; --watch)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "set-mode" -d 'Set a session\'s mode: standard, read_only, elevated or locked'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "unlock" -d 'Unlock a locked session (back to standard)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -f -a "list" -d 'List approvals, newest first (pending ones unless --status says otherwise; --watch)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -f -a "get" -d 'Show one approval'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -f -a "approve" -d 'Approve a pending approval: the same action in the same session is then allowed'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -f -a "deny" -d 'Deny a pending approval: the same action in the same session is then denied'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -f -a "wait" -d 'Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and not __fish_seen_subcommand_from list get approve deny wait help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l status -d 'Only approvals with this status' -r -f -a "pending\t''
approved\t''
denied\t''
expired\t''
all\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l agent -d 'Only this agent\'s approvals (id or name)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l session -d 'Only this session\'s approvals' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l limit -d 'Items per page, 1-1000 (with --all, per request) [default: the gateway\'s, 100]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l cursor -d 'Start at this cursor (the `next_cursor` of a previous page)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l interval -d 'With --watch: time between polls, 1s to 1h' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l all -d 'Follow `next_cursor` until the last page'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -s w -l watch -d 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l decided-by -d 'Who decides (recorded) [default: $USER, else `cli`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from approve" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l decided-by -d 'Who decides (recorded) [default: $USER, else `cli`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from deny" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l interval -d 'Time between polls: 500ms, 2s, 1m' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l wait-timeout -d 'How long to wait in all: 30s, 5m, 1h30m [default: 5m]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from wait" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "list" -d 'List approvals, newest first (pending ones unless --status says otherwise; --watch)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show one approval'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "approve" -d 'Approve a pending approval: the same action in the same session is then allowed'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "deny" -d 'Deny a pending approval: the same action in the same session is then denied'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "wait" -d 'Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -f -a "check" -d 'Check a tool call before making it (silent on allow; the exit status is the answer)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -f -a "run" -d 'Check a tool call and, when allowed, run the command and report what happened'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -f -a "report" -d 'Report what a tool call did (success or failure, duration)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -f -a "flush" -d 'Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -f -a "session" -d 'Start or end a shell session: `eval "$(agenttrust guard session start)"`'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and not __fish_seen_subcommand_from check run report flush session help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l tool -d 'The tool (action) name (may also be given positionally, without --tool)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l input -d 'A summary of the tool\'s input (cut to 200 characters)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token\'s agent]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l session -d 'Session id [env: AGENTTRUST_SESSION_ID] [default: a fresh one]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l effect -d 'What the call does [default: classified by the gateway]' -r -f -a "read\t''
mutating\t''
write\t''
destructive\t''
admin\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l wait-timeout -d 'With --wait, how long to wait in all: 30s, 5m, 1h30m [default: 5m] (for compatibility, --timeout alone still sets it too)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l wait -d 'On elevation, wait for the human decision (approved → go on, denied → 77, timeout → 75)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l fail-open -d 'Treat an unreachable or timed-out gateway as an allow, with a warning (never a denial, an elevation or a 4xx) [env: AGENTTRUST_FAIL_OPEN]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l tool -d 'The tool (action) name (also accepted positionally: `guard run NAME -- COMMAND…`)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l input -d 'More context for the input summary, after the command line (which is always sent)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token\'s agent]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l session -d 'Session id [env: AGENTTRUST_SESSION_ID] [default: a fresh one]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l effect -d 'What the call does [default: classified by the gateway]' -r -f -a "read\t''
mutating\t''
write\t''
destructive\t''
admin\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l wait-timeout -d 'With --wait, how long to wait in all: 30s, 5m, 1h30m [default: 5m] (for compatibility, --timeout alone still sets it too)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l tool-from-argv0 -d 'Name the tool after the command (argv[0]\'s file name), so the checked tool is the one that runs; a --tool naming another is refused'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l log-inputs -d 'Accepted for compatibility: the command line is always the input summary now'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l pass-credentials -d 'Let the command inherit AGENTTRUST_API_KEY and AGENTTRUST_AGENT_TOKEN (scrubbed by default: the wrapped tool must not act with the agent\'s credentials)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l wait -d 'On elevation, wait for the human decision (approved → go on, denied → 77, timeout → 75)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l fail-open -d 'Treat an unreachable or timed-out gateway as an allow, with a warning (never a denial, an elevation or a 4xx) [env: AGENTTRUST_FAIL_OPEN]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from run" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l tool -d 'The tool (action) name (may also be given positionally, without --tool)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l duration-ms -d 'How long the call took, in milliseconds' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l error-type -d 'What kind of failure (e.g. `exit:3`, `timeout`)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l session -d 'Session id [env: AGENTTRUST_SESSION_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l success -d 'The call succeeded'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l failure -d 'The call failed'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from report" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from flush" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -f -a "start" -d 'Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`; nothing is printed when the gateway cannot open one'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -f -a "end" -d 'Deliver the session\'s telemetry and print `unset AGENTTRUST_SESSION_ID`'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from session" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "check" -d 'Check a tool call before making it (silent on allow; the exit status is the answer)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "run" -d 'Check a tool call and, when allowed, run the command and report what happened'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "report" -d 'Report what a tool call did (success or failure, duration)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "flush" -d 'Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "session" -d 'Start or end a shell session: `eval "$(agenttrust guard session start)"`'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -f -a "get" -d 'Print the stored policy document (JSON, whatever -o says)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -f -a "set" -d 'Replace the policy with a JSON file: validates it, shows what changes, confirms'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -f -a "validate" -d 'Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -f -a "test" -d 'Evaluate a hypothetical check against the stored policy (or --file); records nothing'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and not __fish_seen_subcommand_from get set validate test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from validate" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l tool -d 'The tool (action) name' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l input -d 'A summary of the tool\'s input (cut to 200 characters)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l effect -d 'What the call does [default: classified by the gateway]' -r -f -a "read\t''
mutating\t''
write\t''
destructive\t''
admin\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l session -d 'Session id (its mode counts) [env: AGENTTRUST_SESSION_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l file -d 'Evaluate this policy file (JSON, `-` = stdin) instead of the stored policy' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from test" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from help" -f -a "get" -d 'Print the stored policy document (JSON, whatever -o says)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from help" -f -a "set" -d 'Replace the policy with a JSON file: validates it, shows what changes, confirms'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from help" -f -a "validate" -d 'Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from help" -f -a "test" -d 'Evaluate a hypothetical check against the stored policy (or --file); records nothing'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand policies; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -f -a "create" -d 'Delegate capabilities from one agent to another (`-q` prints the delegation id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -f -a "list" -d 'List the org\'s delegations'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -f -a "get" -d 'Show one delegation: status, scope, restrictions, chain'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -f -a "revoke" -d 'Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -f -a "session" -d 'Open a session of the delegate bounded by the delegation (`-q` prints the session id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -f -a "tree" -d 'Show delegations as an indented tree: every chain of the org, or the one containing ID'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and not __fish_seen_subcommand_from create list get revoke session tree help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l from -d 'The delegating agent, by id or name [default with --parent: the parent delegation\'s delegate]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l to -d 'The agent receiving the capabilities, by id or name' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l scope -d 'Capabilities handed over: comma-separated or repeated (files:read,web:fetch)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l ttl -d 'Lifetime: 300, 300s, 5m, 1h [default: the gateway\'s, 1h]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l restrictions -d 'Restrictions as a JSON object ({"paths":["/tmp/*"],"max_calls":10})' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l restrictions-file -d 'Restrictions from a JSON file (`-` reads stdin)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l paths -d 'Path glob every absolute path in a call\'s input must match (repeatable; no comma split)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l tools -d 'Tool-name globs the delegate may call: comma-separated or repeated' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l effects -d 'Effects the delegate may cause, comma-separated: the names --effect takes' -r -f -a "read\t''
mutating\t''
write\t''
destructive\t''
admin\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l max-calls -d 'Calls a session made from the delegation may make in all' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l parent -d 'Re-delegate: the delegation this one is built on' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l from -d 'Only delegations from this agent (id or name)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l to -d 'Only delegations to this agent (id or name)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l limit -d 'Items per page, 1-1000 (with --all, per request) [default: the gateway\'s, 100]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l cursor -d 'Start at this cursor (the `next_cursor` of a previous page)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l active -d 'Only active delegations'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l inactive -d 'Only revoked or expired delegations'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l all -d 'Follow `next_cursor` until the last page'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from session" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from tree" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from help" -f -a "create" -d 'Delegate capabilities from one agent to another (`-q` prints the delegation id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the org\'s delegations'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show one delegation: status, scope, restrictions, chain'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from help" -f -a "session" -d 'Open a session of the delegate bounded by the delegation (`-q` prints the session id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from help" -f -a "tree" -d 'Show delegations as an indented tree: every chain of the org, or the one containing ID'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand delegations; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -f -a "providers" -d 'External OIDC issuers the org trusts: add (by discovery), list, get, update, delete'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -f -a "subjects" -d 'Which subject of a provider acts as which agent of the org: link, list, unlink'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -f -a "verify" -d 'Verify an ID token (a provider\'s or this gateway\'s) for this org'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -f -a "tokens" -d 'ID tokens signed by this gateway for its agents: issue, revoke'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -f -a "session" -d 'Open a session from an ID token, bounded by its provider\'s trust level'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -f -a "sessions" -d 'Open a session from an ID token, bounded by its provider\'s trust level'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and not __fish_seen_subcommand_from providers subjects verify tokens session sessions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -f -a "add" -d 'Register an issuer: its discovery document is fetched and its `issuer` must match (`-q` prints the provider id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -f -a "list" -d 'List the org\'s providers'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -f -a "get" -d 'Show one provider'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -f -a "update" -d 'Change a provider\'s name, trust level, status, audience, subject claim or JWKS URL; `--status disabled` stops its tokens and its sessions at once'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -f -a "disable" -d 'Stop trusting a provider: its tokens are refused and its sessions end at once'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -f -a "enable" -d 'Trust a disabled provider again'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -f -a "remove" -d 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -f -a "delete" -d 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from providers" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -f -a "link" -d 'Let SUBJECT of the provider act as an agent of the org'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -f -a "list" -d 'List the provider\'s linked subjects'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -f -a "unlink" -d 'Remove a link (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from subjects" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l issuer -d 'The issuer it must come from' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -f -a "issue" -d 'Issue an ID token signed by this gateway for an agent (`-q` prints only the token)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -f -a "revoke" -d 'Revoke an ID token this gateway issued: it fails verification here from then on'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from tokens" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -f -a "init" -d 'Open a federation session from an ID token (`-q` prints the session id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from session" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -f -a "init" -d 'Open a federation session from an ID token (`-q` prints the session id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from sessions" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from help" -f -a "providers" -d 'External OIDC issuers the org trusts: add (by discovery), list, get, update, delete'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from help" -f -a "subjects" -d 'Which subject of a provider acts as which agent of the org: link, list, unlink'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Verify an ID token (a provider\'s or this gateway\'s) for this org'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from help" -f -a "tokens" -d 'ID tokens signed by this gateway for its agents: issue, revoke'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from help" -f -a "session" -d 'Open a session from an ID token, bounded by its provider\'s trust level'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand federation; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -f -a "create" -d 'Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook (`-q` prints the destination id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -f -a "list" -d 'List the org\'s destinations'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -f -a "get" -d 'Show one destination (its token masked) and its delivery state'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -f -a "update" -d 'Change a destination\'s name, endpoint, token, batching, filter or state'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -f -a "delete" -d 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -f -a "remove" -d 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -f -a "logs" -d 'A destination\'s delivery attempts, newest first (--follow: print new ones as they come)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -f -a "test" -d 'Send one test event to a destination now (exit 1 when it does not arrive)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and not __fish_seen_subcommand_from create list get update delete remove logs test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l name -d 'A name to tell destinations apart' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l type -d 'splunk (alias splunk_hec), datadog, elastic or webhook' -r -f -a "splunk\t''
splunk_hec\t''
datadog\t''
elastic\t''
webhook\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l endpoint -l endpoint-url -d 'Where events are POSTed (https; http only to a loopback address unless the gateway allows it)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l batch-size -d 'Events per batch, 1 to 1000 [default: 100]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l flush-interval -d 'Longest an event waits for a full batch: 30, 30s, 5m (1s to 1h) [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l filter -d 'Only these event kinds (check.decided) or prefixes (agent.*): comma-separated or repeated [default: every event]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l auth-token-stdin -d 'Read the destination\'s token (HEC token, Datadog API key, Elasticsearch API key, webhook signing secret) from stdin'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l skip-rejected-batches -d 'Pass over a batch the destination rejects as malformed (400, 413, 422) instead of retrying it until fixed'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l inactive -d 'Create it paused (nothing is sent until `update --active true`)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l name -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l endpoint -l endpoint-url -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l active -d 'true: stream; false: pause (the cursor waits)' -r -f -a "true\t''
false\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l batch-size -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l flush-interval -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l filter -d 'Replace the filter: kinds or prefixes, comma-separated or repeated' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l skip-rejected-batches -r -f -a "true\t''
false\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l auth-token-stdin -d 'Read a new token from stdin'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l clear-filter -d 'Send every event again (remove the filter)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l limit -d 'How many records, 1 to 1000 [default: 50]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l interval -d 'With --follow: time between polls [default: 2s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -s f -l follow -d 'Keep polling and print each new record once (oldest first); Ctrl-C stops (exit 0)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from logs" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from test" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from help" -f -a "create" -d 'Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook (`-q` prints the destination id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the org\'s destinations'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show one destination (its token masked) and its delivery state'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from help" -f -a "update" -d 'Change a destination\'s name, endpoint, token, batching, filter or state'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from help" -f -a "logs" -d 'A destination\'s delivery attempts, newest first (--follow: print new ones as they come)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from help" -f -a "test" -d 'Send one test event to a destination now (exit 1 when it does not arrive)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand streaming; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -f -a "servers" -d 'MCP servers the org\'s agents reach through the gateway: add, list, get, remove'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -f -a "tools" -d 'The tools an agent may call on a server (its tools/list, filtered by the org\'s policy; a tool needing a human\'s approval is listed)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -f -a "call" -d 'Call a tool on a server through the gateway, checked by the Guardian first'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and not __fish_seen_subcommand_from servers tools call help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -f -a "add" -d 'Register a server (`-q` prints its id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -f -a "list" -d 'List the org\'s servers'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -f -a "get" -d 'Show one server'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -f -a "remove" -d 'Remove a server (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -f -a "delete" -d 'Remove a server (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from servers" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token\'s agent]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l session -d 'Session id [env: AGENTTRUST_SESSION_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from tools" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l args -d 'The tool\'s arguments, a JSON object' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l agent -d 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token\'s agent]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l session -d 'Session id [env: AGENTTRUST_SESSION_ID]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from call" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from help" -f -a "servers" -d 'MCP servers the org\'s agents reach through the gateway: add, list, get, remove'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from help" -f -a "tools" -d 'The tools an agent may call on a server (its tools/list, filtered by the org\'s policy; a tool needing a human\'s approval is listed)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from help" -f -a "call" -d 'Call a tool on a server through the gateway, checked by the Guardian first'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand mcp; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -f -a "generate" -d 'Generate (or regenerate) an agent\'s card from its record and the settings given here (kept for the next regeneration)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -f -a "get" -d 'Show an agent\'s card (signed now by the gateway)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -f -a "publish" -d 'Publish an agent\'s card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -f -a "unpublish" -d 'Take an agent\'s card off the public route'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -f -a "verify" -d 'Fetch a card by URL (or an agent\'s public card on this gateway), check its signature against the issuer\'s JWK Set, print its trust extension'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and not __fish_seen_subcommand_from generate get publish unpublish verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l description -d 'What the agent does ("" clears it)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l skills-json -d 'The skills to list instead of the agent\'s capabilities: a JSON array of {"id","name","description","tags":[…],"examples":[…]} ("[]" lists none)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l documentation-url -d 'Where the agent is documented ("" clears it)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l endpoint -d 'The agent\'s own A2A JSON-RPC endpoint: messages to it are forwarded there ("" clears it)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from generate" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from publish" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from unpublish" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l jwks -d 'The issuer\'s JWK Set URL (default: see below)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from help" -f -a "generate" -d 'Generate (or regenerate) an agent\'s card from its record and the settings given here (kept for the next regeneration)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show an agent\'s card (signed now by the gateway)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from help" -f -a "publish" -d 'Publish an agent\'s card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from help" -f -a "unpublish" -d 'Take an agent\'s card off the public route'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Fetch a card by URL (or an agent\'s public card on this gateway), check its signature against the issuer\'s JWK Set, print its trust extension'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand cards; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -f -a "send" -d 'Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the target\'s own A2A endpoint when its card names one, else it waits in the gateway'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -f -a "tasks" -d 'The tasks waiting in the gateway: list, get, complete, cancel'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and not __fish_seen_subcommand_from send tasks help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l from -d 'The sending agent (id or name) [default with an agent token: the token\'s agent]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l to -d 'The receiving agent (id or name)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l agent-token-file -d 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token\'s agent acts' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from send" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -f -a "list" -d 'List tasks, newest first'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -f -a "get" -d 'Show one task'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -f -a "complete" -d 'Answer a task as its target: completed (default) or --failed, with a text reply'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -f -a "cancel" -d 'Cancel a task that has not ended'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from tasks" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from help" -f -a "send" -d 'Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the target\'s own A2A endpoint when its card names one, else it waits in the gateway'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from help" -f -a "tasks" -d 'The tasks waiting in the gateway: list, get, complete, cancel'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand a2a; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -f -a "create" -d 'Create a key; the secret is shown once (`-q` prints only the key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -f -a "list" -d 'List keys, oldest first (never the secrets, only their prefixes)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -f -a "revoke" -d 'Revoke a key (asks first, warning when it is the key in use; --yes without a terminal). The org\'s last active admin key cannot be revoked: create another admin key first'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and not __fish_seen_subcommand_from create list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l role -d 'admin manages the org; runtime may only check, report telemetry and handle tokens' -r -f -a "admin\t''
runtime\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l name -d 'A name to tell keys apart' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l limit -d 'Items per page, 1-1000 (with --all, per request) [default: the gateway\'s, 100]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l cursor -d 'Start at this cursor (the `next_cursor` of a previous page)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l all -d 'Follow `next_cursor` until the last page'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s y -l yes -d 'Do not ask for confirmation'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a key; the secret is shown once (`-q` prints only the key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "list" -d 'List keys, oldest first (never the secrets, only their prefixes)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a key (asks first, warning when it is the key in use; --yes without a terminal). The org\'s last active admin key cannot be revoked: create another admin key first'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -f -a "security-settings" -d 'Proof of possession and sender-constrained tokens'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and not __fish_seen_subcommand_from security-settings help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -f -a "get" -d 'Show the org\'s security settings'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -f -a "set" -d 'Change them (a setting left out keeps its value)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from security-settings" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from help" -f -a "security-settings" -d 'Proof of possession and sender-constrained tokens'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand orgs; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -f -a "list" -d 'List audit events in chain order, oldest first, filtered (`--all` follows every page)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -f -a "get" -d 'Show one audit event, with its detail and hashes'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -f -a "tail" -d 'Print the latest events; with -f, follow new ones as they are appended (reconnecting)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -f -a "verify" -d 'Verify the org\'s audit chain online, or an export file offline (exit 0 intact, 1 not)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -f -a "export" -d 'Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -f -a "checkpoints" -d 'List the signed checkpoints of the chain\'s head, or sign the head now'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -f -a "keys" -d 'Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and not __fish_seen_subcommand_from list get tail verify export checkpoints keys help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l kind -d 'Only these kinds: exact (check.decided) or a prefix (federation.*); repeat or separate with commas' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l agent -d 'Only events concerning this agent (its subject, its agent_id, or its actor)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l subject -d 'Only events about this subject: TYPE or TYPE:ID (agent:agt_…, policy)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l since -d 'Only events at or after this time: RFC 3339, or a duration ago (30m, 24h)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l until -d 'Only events at or before this time: RFC 3339, or a duration ago' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l limit -d 'Events per page (1-1000) [default: the gateway\'s, 100]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l cursor -d 'Start at this cursor (the `next_cursor` of a previous page)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l reverse -d 'Newest first'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l all -d 'Follow `next_cursor` until the last page'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l kind -d 'Only these kinds: exact (check.decided) or a prefix (federation.*); repeat or separate with commas' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l agent -d 'Only events concerning this agent (its subject, its agent_id, or its actor)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l subject -d 'Only events about this subject: TYPE or TYPE:ID (agent:agt_…, policy)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l since -d 'Only events at or after this time: RFC 3339, or a duration ago (30m, 24h)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l until -d 'Only events at or before this time: RFC 3339, or a duration ago' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -s n -l lines -d 'How many of the latest events to print first (0-1000)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -s f -l follow -d 'Keep following: print each new event as it is appended; Ctrl-C stops (exit 0)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from tail" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l from-seq -d 'Start at this event (its link to the event before is checked against the stored hash)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l to-seq -d 'Stop at this event' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l offline -d 'Verify this export file (`-` for stdin) without a gateway' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l key -d 'With --offline: the gateway\'s public keys, a JWK Set file (from `agenttrust audit keys`)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l since -d 'Start at the first event at or after this time: RFC 3339, or a duration ago (24h)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l from-seq -d 'Start at this event [default: 1, the whole chain]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l output-file -d 'Write to this file instead of stdout (replaced only once the export is complete)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from export" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -f -a "list" -d 'List signed checkpoints, oldest first'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -f -a "create" -d 'Sign the chain\'s head now'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from checkpoints" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from keys" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "list" -d 'List audit events in chain order, oldest first, filtered (`--all` follows every page)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show one audit event, with its detail and hashes'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "tail" -d 'Print the latest events; with -f, follow new ones as they are appended (reconnecting)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Verify the org\'s audit chain online, or an export file offline (exit 0 intact, 1 not)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "export" -d 'Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "checkpoints" -d 'List the signed checkpoints of the chain\'s head, or sign the head now'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "keys" -d 'Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -s d -l data -d 'Request body: JSON text, @FILE to read a file, or - to read stdin' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -s H -l header -d 'Extra request header (repeatable): \'Name: value\'' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -s i -l include -d 'Print the response status and headers on stderr'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand api" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l connections -d 'Concurrent workers, each with its own connection (1-4096)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l duration -d 'How long each scenario is measured: 10s, 1m' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l rate -d 'Open loop: requests a second in all, sent at fixed times [default: closed loop]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l warmup -d 'Load before each scenario\'s measurement, not recorded: 1s, 0s for none' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -a "seed" -d 'Fill the gateway with agents and checks through the API, to measure it at a size (like pgbench -i)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and not __fish_seen_subcommand_from seed help" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l agents -d 'Agents to register' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l checks -d 'Checks to make, spread over the new agents' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l connections -d 'Concurrent workers, each with its own connection (1-4096)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from seed" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "seed" -d 'Fill the gateway with agents and checks through the API, to measure it at a size (like pgbench -i)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l write-dir -d 'Write every shell\'s file into this dir (used to refresh completions/)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand completions" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l write-dir -d 'Write every page into this dir instead (used to refresh man/)' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand man" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l listen -d 'Where to listen' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l max-token-ttl -d 'The longest lifetime a token may be issued for (`3600`, `1h`)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l sqlite-synchronous -d 'When SQLite syncs a commit to disk: `full` (every commit survives an OS crash or power loss) or `normal` (faster; the last commits may be lost when the machine goes down)' -r -f -a "full\t''
normal\t''"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l max-policy-rules -d 'Most rules an org\'s policy may have' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l max-policy-compiled-bytes -d 'Most memory, in bytes, an org\'s compiled policy may take (its regexes above all)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l max-connections -d 'Most connections served at once; past it a connection gets a 503' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l header-read-timeout -d 'How long a client may take to send a request\'s headers (also ends idle connections)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l request-timeout -d 'How long one request, its body included, may take before it is answered with a 503' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l max-delegation-ttl -d 'The longest lifetime a delegation may be created for; a longer `ttl_seconds` is refused' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l audit-checkpoint-interval -d 'How often the head of every audit chain that grew is signed (a checkpoint an export is verified against offline); 0 signs only on demand (`audit export` asks for one)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l public-url -d 'The URL clients reach this gateway at (behind a load balancer: its URL); the issuer name of the ID tokens it signs [default: http://<listen address>]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l mcp-upstream-timeout -d 'How long a call to an MCP upstream may take, answer included (below --request-timeout)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l telemetry-rate-limit -d 'The most telemetry events per second one agent may report (a burst of ten seconds\' worth, at least one full report, passes); more is refused with 429 and Retry-After. Counted per replica [default: no limit]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l a2a-rate-limit -d 'The most A2A messages per second one agent may send (a burst of ten seconds\' worth passes); more is refused with 429 and Retry-After, before any check or task is stored. Counted per replica [default: no limit]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l mcp-session-idle-timeout -d 'How long an MCP session held by the proxy may go unused before it ends' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l database-url -d '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l data-dir -d 'Directory of the default SQLite file [default: the platform\'s data dir]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l signing-key-secret-file -d 'A file holding the key-encryption key that seals the private halves of the gateway\'s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l dev -d 'Create (once) an org and an admin key and save them as profile `local`'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l federation-allow-http -d 'Fetch federation providers\' documents over plain http from any host (by default only https, or http to a loopback address)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l streaming-allow-http -d 'Stream the audit log to SIEM destinations over plain http on any host (by default only https, or http to a loopback address)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l mcp-allow-http -d 'Reach MCP upstreams over plain http on any host (by default only https, or http to a loopback address)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -f -a "org" -d 'Manage orgs in the database'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -f -a "key" -d 'Mint org API keys in the database'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -f -a "signing-key" -d 'The gateway\'s signing keys (ID tokens): list, rotate, make a key-encryption key'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and not __fish_seen_subcommand_from org key signing-key help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l database-url -d '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l data-dir -d 'Directory of the default SQLite file [default: the platform\'s data dir]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l signing-key-secret-file -d 'A file holding the key-encryption key that seals the private halves of the gateway\'s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -f -a "create" -d 'Create an org; prints its id'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -f -a "list" -d 'List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q` for the ids)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from org" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l database-url -d '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l data-dir -d 'Directory of the default SQLite file [default: the platform\'s data dir]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l signing-key-secret-file -d 'A file holding the key-encryption key that seals the private halves of the gateway\'s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -f -a "create" -d 'Mint an API key for an org; prints the key once'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from key" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l database-url -d '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l data-dir -d 'Directory of the default SQLite file [default: the platform\'s data dir]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l signing-key-secret-file -d 'A file holding the key-encryption key that seals the private halves of the gateway\'s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l profile -d 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l url -d 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -s o -l output -d 'Output format [env: AGENTTRUST_OUTPUT] [default: table]' -r -f -a "table\t'Aligned columns on a terminal, tab-separated values otherwise'
json\t'The gateway\'s JSON, as received'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l jq -d 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l timeout -d 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]' -r
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l ca-cert -d 'Trust this PEM CA certificate in addition to the system roots' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l config-dir -d 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform\'s, e.g. ~/.config/agenttrust]' -r -F
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l color -d 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never' -r -f -a "auto\t'Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say otherwise'
always\t'Always colour, even into a pipe'
never\t'Never colour'"
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l insecure -d 'Skip TLS certificate verification (unsafe; warns)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l no-input -d 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -s q -l quiet -d 'Print only the primary value (an id, a token, a key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -s v -l verbose -d 'More logging on stderr (-v debug, -vv everything)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -l wide -d 'Tables: every column whole (ids not shortened, not fitted to the terminal\'s width)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -s V -l version -d 'Print version'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -f -a "list" -d 'List the signing keys: which one signs, which are still published'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -f -a "rotate" -d 'Make a new signing key; the old one stays published for --overlap, so the tokens it signed keep verifying until they expire'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -f -a "secret" -d 'Print a new random key-encryption key, for --signing-key-secret-file'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from signing-key" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "org" -d 'Manage orgs in the database'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "key" -d 'Mint org API keys in the database'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "signing-key" -d 'The gateway\'s signing keys (ID tokens): list, rotate, make a key-encryption key'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "login" -d 'Validate an API key against the gateway and save it in a profile'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "profile" -d 'Manage profiles (list, show, use, delete, import)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "status" -d 'Show the profile in use, the gateway\'s health and whether the API key works'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "health" -d 'Check the gateway\'s health'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "version" -d 'Print this CLI\'s version and the gateway\'s (when it answers; never fails)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "agents" -d 'Register, list, inspect and revoke agents'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "tokens" -d 'Issue, introspect and revoke agent tokens'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "actions" -d 'Check an action against policy (exit 0 allowed, 77 denied, 75 elevation required)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "telemetry" -d 'Report and list telemetry events'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "sessions" -d 'Open, inspect, list, re-mode and unlock agent sessions'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "approvals" -d 'List, approve, deny and wait for approvals (elevation)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "guard" -d 'The runtime seatbelt for shell-scripted agents: check, run, report (exit codes are the API)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "policies" -d 'Get, set, validate (offline) and test the org\'s policy'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "delegations" -d 'Delegate capabilities between agents: create, list, get, revoke, open a session, tree'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "federation" -d 'Federation: trust external OIDC issuers (providers, subject links), verify and issue ID tokens, open sessions from them'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "streaming" -d 'Stream the audit log to SIEMs (Splunk HEC, Datadog, Elasticsearch, signed webhooks): destinations, delivery logs, test deliveries'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "mcp" -d 'MCP: register MCP servers, list the tools an agent may call there, call one through the gateway (checked by the Guardian)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "cards" -d 'Agent cards (A2A): generate, get, publish and unpublish an agent\'s signed card; verify any card against its issuer\'s keys'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "a2a" -d 'Agent-to-agent messages through the gateway (checked by the Guardian): send, and the tasks waiting for their target'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "keys" -d 'Manage org API keys'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "orgs" -d 'The org\'s security settings: proof of possession, sender-constrained tokens'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "audit" -d 'Read the org\'s audit log and verify its hash chain'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "api" -d 'Send a raw request to the gateway with the profile\'s URL and key (like `gh api`)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "bench" -d 'Measure the gateway under load: checks, introspections, token issues, telemetry, each beside /health (like pgbench)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "completions" -d 'Print a shell completion script'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "man" -d 'Print a man page (`agenttrust man agents list | man -l -`)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "server" -d 'Run the embedded AgentTrust-compatible gateway'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and not __fish_seen_subcommand_from login profile status health version agents tokens actions telemetry sessions approvals guard policies delegations federation streaming mcp cards a2a keys orgs audit api bench completions man server help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from profile" -f -a "list" -d 'List profiles (`*` marks the default)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from profile" -f -a "show" -d 'Show a profile\'s settings, secrets masked [default: the profile in use]'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from profile" -f -a "use" -d 'Make a profile the default'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from profile" -f -a "set" -d 'Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure, ca_cert (the API key is set with `agenttrust login`, which checks it)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from profile" -f -a "rename" -d 'Rename a profile (its key and its place as the default go with it)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from profile" -f -a "delete" -d 'Delete a profile and its credentials (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from profile" -f -a "import" -d 'Import the SDK\'s JSON config file (base_url, auth_url, api_key[, audit_url, timeout]) into the profile named by --profile (default `default`)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "create" -d 'Register an agent'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "list" -d 'List the org\'s agents, oldest first (`--all` follows every page)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "get" -d 'Show one agent'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "revoke" -d 'Revoke an agent and every live token of it (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "mode" -d 'Set the agent\'s own mode, binding it in every session: standard, read_only or locked'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "unlock" -d 'Unlock an agent locked by an admin or by the agent-level lockout'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "keys" -d 'The agent\'s Ed25519 key (proof of possession, DPoP)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from tokens" -f -a "issue" -d 'Issue a token for an agent (`-q` prints only the token)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from tokens" -f -a "introspect" -d 'Ask the gateway whether a token is active'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from tokens" -f -a "list" -d 'List tokens (active ones unless --include-inactive; never the secrets, which the gateway does not keep)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from tokens" -f -a "revoke" -d 'Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from actions" -f -a "check" -d 'Check a tool call against policy'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from telemetry" -f -a "report" -d 'Report one event (e.g. tool_end after a tool ran)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from telemetry" -f -a "list" -d 'List stored events, oldest first (`--all` follows every page)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "init" -d 'Open an MCP session of an agent with a server (`-q` prints the session id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "init-api" -d 'Open a session from an agent token: its agent and scope ceiling come from the token'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "get" -d 'Show one session: mode, scope ceiling, call counters'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "list" -d 'List the org\'s sessions, oldest first (`--all` follows every page; --watch)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "set-mode" -d 'Set a session\'s mode: standard, read_only, elevated or locked'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "unlock" -d 'Unlock a locked session (back to standard)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "list" -d 'List approvals, newest first (pending ones unless --status says otherwise; --watch)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "get" -d 'Show one approval'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "approve" -d 'Approve a pending approval: the same action in the same session is then allowed'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "deny" -d 'Deny a pending approval: the same action in the same session is then denied'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "wait" -d 'Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from guard" -f -a "check" -d 'Check a tool call before making it (silent on allow; the exit status is the answer)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from guard" -f -a "run" -d 'Check a tool call and, when allowed, run the command and report what happened'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from guard" -f -a "report" -d 'Report what a tool call did (success or failure, duration)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from guard" -f -a "flush" -d 'Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from guard" -f -a "session" -d 'Start or end a shell session: `eval "$(agenttrust guard session start)"`'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from policies" -f -a "get" -d 'Print the stored policy document (JSON, whatever -o says)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from policies" -f -a "set" -d 'Replace the policy with a JSON file: validates it, shows what changes, confirms'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from policies" -f -a "validate" -d 'Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from policies" -f -a "test" -d 'Evaluate a hypothetical check against the stored policy (or --file); records nothing'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from delegations" -f -a "create" -d 'Delegate capabilities from one agent to another (`-q` prints the delegation id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from delegations" -f -a "list" -d 'List the org\'s delegations'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from delegations" -f -a "get" -d 'Show one delegation: status, scope, restrictions, chain'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from delegations" -f -a "revoke" -d 'Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from delegations" -f -a "session" -d 'Open a session of the delegate bounded by the delegation (`-q` prints the session id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from delegations" -f -a "tree" -d 'Show delegations as an indented tree: every chain of the org, or the one containing ID'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from federation" -f -a "providers" -d 'External OIDC issuers the org trusts: add (by discovery), list, get, update, delete'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from federation" -f -a "subjects" -d 'Which subject of a provider acts as which agent of the org: link, list, unlink'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from federation" -f -a "verify" -d 'Verify an ID token (a provider\'s or this gateway\'s) for this org'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from federation" -f -a "tokens" -d 'ID tokens signed by this gateway for its agents: issue, revoke'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from federation" -f -a "session" -d 'Open a session from an ID token, bounded by its provider\'s trust level'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from streaming" -f -a "create" -d 'Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook (`-q` prints the destination id)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from streaming" -f -a "list" -d 'List the org\'s destinations'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from streaming" -f -a "get" -d 'Show one destination (its token masked) and its delivery state'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from streaming" -f -a "update" -d 'Change a destination\'s name, endpoint, token, batching, filter or state'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from streaming" -f -a "delete" -d 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from streaming" -f -a "logs" -d 'A destination\'s delivery attempts, newest first (--follow: print new ones as they come)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from streaming" -f -a "test" -d 'Send one test event to a destination now (exit 1 when it does not arrive)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from mcp" -f -a "servers" -d 'MCP servers the org\'s agents reach through the gateway: add, list, get, remove'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from mcp" -f -a "tools" -d 'The tools an agent may call on a server (its tools/list, filtered by the org\'s policy; a tool needing a human\'s approval is listed)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from mcp" -f -a "call" -d 'Call a tool on a server through the gateway, checked by the Guardian first'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from cards" -f -a "generate" -d 'Generate (or regenerate) an agent\'s card from its record and the settings given here (kept for the next regeneration)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from cards" -f -a "get" -d 'Show an agent\'s card (signed now by the gateway)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from cards" -f -a "publish" -d 'Publish an agent\'s card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from cards" -f -a "unpublish" -d 'Take an agent\'s card off the public route'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from cards" -f -a "verify" -d 'Fetch a card by URL (or an agent\'s public card on this gateway), check its signature against the issuer\'s JWK Set, print its trust extension'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from a2a" -f -a "send" -d 'Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the target\'s own A2A endpoint when its card names one, else it waits in the gateway'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from a2a" -f -a "tasks" -d 'The tasks waiting in the gateway: list, get, complete, cancel'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "create" -d 'Create a key; the secret is shown once (`-q` prints only the key)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "list" -d 'List keys, oldest first (never the secrets, only their prefixes)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "revoke" -d 'Revoke a key (asks first, warning when it is the key in use; --yes without a terminal). The org\'s last active admin key cannot be revoked: create another admin key first'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from orgs" -f -a "security-settings" -d 'Proof of possession and sender-constrained tokens'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "list" -d 'List audit events in chain order, oldest first, filtered (`--all` follows every page)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "get" -d 'Show one audit event, with its detail and hashes'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "tail" -d 'Print the latest events; with -f, follow new ones as they are appended (reconnecting)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "verify" -d 'Verify the org\'s audit chain online, or an export file offline (exit 0 intact, 1 not)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "export" -d 'Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "checkpoints" -d 'List the signed checkpoints of the chain\'s head, or sign the head now'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "keys" -d 'Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "seed" -d 'Fill the gateway with agents and checks through the API, to measure it at a size (like pgbench -i)'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from server" -f -a "org" -d 'Manage orgs in the database'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from server" -f -a "key" -d 'Mint org API keys in the database'
complete -c agenttrust -n "__fish_agenttrust_using_subcommand help; and __fish_seen_subcommand_from server" -f -a "signing-key" -d 'The gateway\'s signing keys (ID tokens): list, rotate, make a key-encryption key'
