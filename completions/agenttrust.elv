
use builtin;
use str;

set edit:completion:arg-completer[agenttrust] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'agenttrust'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'agenttrust'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand login 'Validate an API key against the gateway and save it in a profile'
            cand profile 'Manage profiles (list, show, use, delete, import)'
            cand status 'Show the profile in use, the gateway''s health and whether the API key works'
            cand health 'Check the gateway''s health'
            cand version 'Print this CLI''s version and the gateway''s (when it answers; never fails)'
            cand agents 'Register, list, inspect and revoke agents'
            cand tokens 'Issue, introspect and revoke agent tokens'
            cand actions 'Check an action against policy (exit 0 allowed, 77 denied, 75 elevation required)'
            cand telemetry 'Report and list telemetry events'
            cand sessions 'Open, inspect, list, re-mode and unlock agent sessions'
            cand approvals 'List, approve, deny and wait for approvals (elevation)'
            cand guard 'The runtime seatbelt for shell-scripted agents: check, run, report (exit codes are the API)'
            cand policies 'Get, set, validate (offline) and test the org''s policy'
            cand delegations 'Delegate capabilities between agents: create, list, get, revoke, open a session, tree'
            cand federation 'Federation: trust external OIDC issuers (providers, subject links), verify and issue ID tokens, open sessions from them'
            cand streaming 'Stream the audit log to SIEMs (Splunk HEC, Datadog, Elasticsearch, signed webhooks): destinations, delivery logs, test deliveries'
            cand mcp 'MCP: register MCP servers, list the tools an agent may call there, call one through the gateway (checked by the Guardian)'
            cand cards 'Agent cards (A2A): generate, get, publish and unpublish an agent''s signed card; verify any card against its issuer''s keys'
            cand a2a 'Agent-to-agent messages through the gateway (checked by the Guardian): send, and the tasks waiting for their target'
            cand keys 'Manage org API keys'
            cand orgs 'The org''s security settings: proof of possession, sender-constrained tokens'
            cand audit 'Read the org''s audit log and verify its hash chain'
            cand api 'Send a raw request to the gateway with the profile''s URL and key (like `gh api`)'
            cand bench 'Measure the gateway under load: checks, introspections, token issues, telemetry, each beside /health (like pgbench)'
            cand completions 'Print a shell completion script'
            cand man 'Print a man page (`agenttrust man agents list | man -l -`)'
            cand server 'Run the embedded AgentTrust-compatible gateway'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;login'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --api-key-stdin 'Read the API key from stdin instead of prompting'
            cand --set-default 'Make this profile the default (the first profile saved always becomes the default)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;profile'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List profiles (`*` marks the default)'
            cand show 'Show a profile''s settings, secrets masked [default: the profile in use]'
            cand use 'Make a profile the default'
            cand set 'Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure, ca_cert (the API key is set with `agenttrust login`, which checks it)'
            cand rename 'Rename a profile (its key and its place as the default go with it)'
            cand delete 'Delete a profile and its credentials (asks first; --yes without a terminal)'
            cand import 'Import the SDK''s JSON config file (base_url, auth_url, api_key[, audit_url, timeout]) into the profile named by --profile (default `default`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;profile;list'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;profile;show'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --show-secrets 'Show the API key in full'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;profile;use'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;profile;set'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;profile;rename'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;profile;delete'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;profile;import'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --set-default 'Make the profile the default'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;profile;help'= {
            cand list 'List profiles (`*` marks the default)'
            cand show 'Show a profile''s settings, secrets masked [default: the profile in use]'
            cand use 'Make a profile the default'
            cand set 'Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure, ca_cert (the API key is set with `agenttrust login`, which checks it)'
            cand rename 'Rename a profile (its key and its place as the default go with it)'
            cand delete 'Delete a profile and its credentials (asks first; --yes without a terminal)'
            cand import 'Import the SDK''s JSON config file (base_url, auth_url, api_key[, audit_url, timeout]) into the profile named by --profile (default `default`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;profile;help;list'= {
        }
        &'agenttrust;profile;help;show'= {
        }
        &'agenttrust;profile;help;use'= {
        }
        &'agenttrust;profile;help;set'= {
        }
        &'agenttrust;profile;help;rename'= {
        }
        &'agenttrust;profile;help;delete'= {
        }
        &'agenttrust;profile;help;import'= {
        }
        &'agenttrust;profile;help;help'= {
        }
        &'agenttrust;status'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;health'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;version'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;agents'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Register an agent'
            cand list 'List the org''s agents, oldest first (`--all` follows every page)'
            cand get 'Show one agent'
            cand revoke 'Revoke an agent and every live token of it (asks first; --yes without a terminal)'
            cand mode 'Set the agent''s own mode, binding it in every session: standard, read_only or locked'
            cand unlock 'Unlock an agent locked by an admin or by the agent-level lockout'
            cand keys 'The agent''s Ed25519 key (proof of possession, DPoP)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;agents;create'= {
            cand --name 'Agent name (unique in the org)'
            cand --framework 'Framework the agent runs on [default: custom]'
            cand --capabilities 'Capabilities: comma-separated or repeated (files:read,web:fetch)'
            cand --metadata 'Free-form metadata as a JSON object'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --generate-key 'Make an Ed25519 key pair here and register its public half; the private half is kept in the profile''s agent-key folder (0600), where `guard` and `actions check` find it'
            cand --print-private-key 'Print the private key (PKCS#8 PEM) once instead of keeping it in the profile''s agent-key folder'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;agents;list'= {
            cand --status 'Only agents with this status'
            cand --name-prefix 'Only agents whose name starts with this text'
            cand --limit 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]'
            cand --cursor 'Start at this cursor (the `next_cursor` of a previous page)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --all 'Follow `next_cursor` until the last page'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;agents;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;agents;revoke'= {
            cand --reason 'Why (recorded in the audit log)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;agents;mode'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;agents;unlock'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;agents;keys'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand rotate 'Make a new key pair here and register its public half; the previous key keeps working for the grace period'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;agents;keys;rotate'= {
            cand --grace 'How long the previous key keeps working (`0`, `300`, `15m`, `1h`) [default: 1h]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --print-private-key 'Print the private key (PKCS#8 PEM) once instead of keeping it in the profile''s agent-key folder'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;agents;keys;help'= {
            cand rotate 'Make a new key pair here and register its public half; the previous key keeps working for the grace period'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;agents;keys;help;rotate'= {
        }
        &'agenttrust;agents;keys;help;help'= {
        }
        &'agenttrust;agents;help'= {
            cand create 'Register an agent'
            cand list 'List the org''s agents, oldest first (`--all` follows every page)'
            cand get 'Show one agent'
            cand revoke 'Revoke an agent and every live token of it (asks first; --yes without a terminal)'
            cand mode 'Set the agent''s own mode, binding it in every session: standard, read_only or locked'
            cand unlock 'Unlock an agent locked by an admin or by the agent-level lockout'
            cand keys 'The agent''s Ed25519 key (proof of possession, DPoP)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;agents;help;create'= {
        }
        &'agenttrust;agents;help;list'= {
        }
        &'agenttrust;agents;help;get'= {
        }
        &'agenttrust;agents;help;revoke'= {
        }
        &'agenttrust;agents;help;mode'= {
        }
        &'agenttrust;agents;help;unlock'= {
        }
        &'agenttrust;agents;help;keys'= {
            cand rotate 'Make a new key pair here and register its public half; the previous key keeps working for the grace period'
        }
        &'agenttrust;agents;help;keys;rotate'= {
        }
        &'agenttrust;agents;help;help'= {
        }
        &'agenttrust;tokens'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand issue 'Issue a token for an agent (`-q` prints only the token)'
            cand introspect 'Ask the gateway whether a token is active'
            cand list 'List tokens (active ones unless --include-inactive; never the secrets, which the gateway does not keep)'
            cand revoke 'Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;tokens;issue'= {
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID]'
            cand --scopes 'Scopes: comma-separated or repeated'
            cand --ttl 'Lifetime: 300, 300s, 5m, 1h [default: the gateway''s, 5m]'
            cand --session 'Bind the token to a session [env: AGENTTRUST_SESSION_ID]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;tokens;introspect'= {
            cand --target 'Where the token is being presented (e.g. mcp://filesystem)'
            cand --required-scopes 'Scopes the token must carry: comma-separated or repeated'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;tokens;list'= {
            cand --agent 'Only this agent''s tokens (id or name)'
            cand --limit 'Tokens per page (1-1000) [default: the gateway''s, 100]'
            cand --cursor 'Start at this cursor (the `next_cursor` of a previous page)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --include-inactive 'Also revoked and expired tokens, and those of inactive agents'
            cand --all 'Follow `next_cursor` until the last page'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;tokens;revoke'= {
            cand --id 'Revoke the token with this id instead (admin key)'
            cand --reason 'Why (recorded in the audit log)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;tokens;help'= {
            cand issue 'Issue a token for an agent (`-q` prints only the token)'
            cand introspect 'Ask the gateway whether a token is active'
            cand list 'List tokens (active ones unless --include-inactive; never the secrets, which the gateway does not keep)'
            cand revoke 'Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;tokens;help;issue'= {
        }
        &'agenttrust;tokens;help;introspect'= {
        }
        &'agenttrust;tokens;help;list'= {
        }
        &'agenttrust;tokens;help;revoke'= {
        }
        &'agenttrust;tokens;help;help'= {
        }
        &'agenttrust;actions'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand check 'Check a tool call against policy'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;actions;check'= {
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]'
            cand --tool 'The tool (action) name (may also be given positionally, without --tool)'
            cand --input 'A summary of the tool''s input (cut to 200 characters)'
            cand --effect 'What the call does [default: classified by the gateway]'
            cand --session 'Session id [env: AGENTTRUST_SESSION_ID]'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;actions;help'= {
            cand check 'Check a tool call against policy'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;actions;help;check'= {
        }
        &'agenttrust;actions;help;help'= {
        }
        &'agenttrust;telemetry'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand report 'Report one event (e.g. tool_end after a tool ran)'
            cand list 'List stored events, oldest first (`--all` follows every page)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;telemetry;report'= {
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID]'
            cand --session 'Session id [env: AGENTTRUST_SESSION_ID]'
            cand --event-type 'Event type (the SDKs'' names; a typo would be stored as an event nobody reads)'
            cand --tool 'The tool''s name'
            cand --duration-ms 'How long the tool ran, in milliseconds'
            cand --error-type 'The kind of error on failure (e.g. TimeoutError)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --success 'The tool succeeded [default: inferred from the event type]'
            cand --failure 'The tool failed'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;telemetry;list'= {
            cand --agent 'Only this agent''s events (id or name)'
            cand --session 'Only this session''s events'
            cand --limit 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]'
            cand --cursor 'Start at this cursor (the `next_cursor` of a previous page)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --all 'Follow `next_cursor` until the last page'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;telemetry;help'= {
            cand report 'Report one event (e.g. tool_end after a tool ran)'
            cand list 'List stored events, oldest first (`--all` follows every page)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;telemetry;help;report'= {
        }
        &'agenttrust;telemetry;help;list'= {
        }
        &'agenttrust;telemetry;help;help'= {
        }
        &'agenttrust;sessions'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand init 'Open an MCP session of an agent with a server (`-q` prints the session id)'
            cand init-api 'Open a session from an agent token: its agent and scope ceiling come from the token'
            cand get 'Show one session: mode, scope ceiling, call counters'
            cand list 'List the org''s sessions, oldest first (`--all` follows every page; --watch)'
            cand set-mode 'Set a session''s mode: standard, read_only, elevated or locked'
            cand unlock 'Unlock a locked session (back to standard)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;sessions;init'= {
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID]'
            cand --server 'The MCP server''s id (a server registered with `agenttrust mcp servers add`)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;sessions;init-api'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;sessions;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;sessions;list'= {
            cand --agent 'Only this agent''s sessions (id or name)'
            cand --mode 'Only sessions in this mode'
            cand --source 'Only sessions from this source: sdk, mcp, api, a2a, federation'
            cand --limit 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]'
            cand --cursor 'Start at this cursor (the `next_cursor` of a previous page)'
            cand --interval 'With --watch: time between polls, 1s to 1h'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --all 'Follow `next_cursor` until the last page'
            cand -w 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)'
            cand --watch 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;sessions;set-mode'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;sessions;unlock'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;sessions;help'= {
            cand init 'Open an MCP session of an agent with a server (`-q` prints the session id)'
            cand init-api 'Open a session from an agent token: its agent and scope ceiling come from the token'
            cand get 'Show one session: mode, scope ceiling, call counters'
            cand list 'List the org''s sessions, oldest first (`--all` follows every page; --watch)'
            cand set-mode 'Set a session''s mode: standard, read_only, elevated or locked'
            cand unlock 'Unlock a locked session (back to standard)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;sessions;help;init'= {
        }
        &'agenttrust;sessions;help;init-api'= {
        }
        &'agenttrust;sessions;help;get'= {
        }
        &'agenttrust;sessions;help;list'= {
        }
        &'agenttrust;sessions;help;set-mode'= {
        }
        &'agenttrust;sessions;help;unlock'= {
        }
        &'agenttrust;sessions;help;help'= {
        }
        &'agenttrust;approvals'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List approvals, newest first (pending ones unless --status says otherwise; --watch)'
            cand get 'Show one approval'
            cand approve 'Approve a pending approval: the same action in the same session is then allowed'
            cand deny 'Deny a pending approval: the same action in the same session is then denied'
            cand wait 'Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;approvals;list'= {
            cand --status 'Only approvals with this status'
            cand --agent 'Only this agent''s approvals (id or name)'
            cand --session 'Only this session''s approvals'
            cand --limit 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]'
            cand --cursor 'Start at this cursor (the `next_cursor` of a previous page)'
            cand --interval 'With --watch: time between polls, 1s to 1h'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --all 'Follow `next_cursor` until the last page'
            cand -w 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)'
            cand --watch 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;approvals;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;approvals;approve'= {
            cand --decided-by 'Who decides (recorded) [default: $USER, else `cli`]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;approvals;deny'= {
            cand --decided-by 'Who decides (recorded) [default: $USER, else `cli`]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;approvals;wait'= {
            cand --interval 'Time between polls: 500ms, 2s, 1m'
            cand --wait-timeout 'How long to wait in all: 30s, 5m, 1h30m [default: 5m]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;approvals;help'= {
            cand list 'List approvals, newest first (pending ones unless --status says otherwise; --watch)'
            cand get 'Show one approval'
            cand approve 'Approve a pending approval: the same action in the same session is then allowed'
            cand deny 'Deny a pending approval: the same action in the same session is then denied'
            cand wait 'Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;approvals;help;list'= {
        }
        &'agenttrust;approvals;help;get'= {
        }
        &'agenttrust;approvals;help;approve'= {
        }
        &'agenttrust;approvals;help;deny'= {
        }
        &'agenttrust;approvals;help;wait'= {
        }
        &'agenttrust;approvals;help;help'= {
        }
        &'agenttrust;guard'= {
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand check 'Check a tool call before making it (silent on allow; the exit status is the answer)'
            cand run 'Check a tool call and, when allowed, run the command and report what happened'
            cand report 'Report what a tool call did (success or failure, duration)'
            cand flush 'Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)'
            cand session 'Start or end a shell session: `eval "$(agenttrust guard session start)"`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;guard;check'= {
            cand --tool 'The tool (action) name (may also be given positionally, without --tool)'
            cand --input 'A summary of the tool''s input (cut to 200 characters)'
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]'
            cand --session 'Session id [env: AGENTTRUST_SESSION_ID] [default: a fresh one]'
            cand --effect 'What the call does [default: classified by the gateway]'
            cand --wait-timeout 'With --wait, how long to wait in all: 30s, 5m, 1h30m [default: 5m] (for compatibility, --timeout alone still sets it too)'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --wait 'On elevation, wait for the human decision (approved → go on, denied → 77, timeout → 75)'
            cand --fail-open 'Treat an unreachable or timed-out gateway as an allow, with a warning (never a denial, an elevation or a 4xx) [env: AGENTTRUST_FAIL_OPEN]'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;guard;run'= {
            cand --tool 'The tool (action) name (also accepted positionally: `guard run NAME -- COMMAND…`)'
            cand --input 'More context for the input summary, after the command line (which is always sent)'
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]'
            cand --session 'Session id [env: AGENTTRUST_SESSION_ID] [default: a fresh one]'
            cand --effect 'What the call does [default: classified by the gateway]'
            cand --wait-timeout 'With --wait, how long to wait in all: 30s, 5m, 1h30m [default: 5m] (for compatibility, --timeout alone still sets it too)'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --tool-from-argv0 'Name the tool after the command (argv[0]''s file name), so the checked tool is the one that runs; a --tool naming another is refused'
            cand --log-inputs 'Accepted for compatibility: the command line is always the input summary now'
            cand --pass-credentials 'Let the command inherit AGENTTRUST_API_KEY and AGENTTRUST_AGENT_TOKEN (scrubbed by default: the wrapped tool must not act with the agent''s credentials)'
            cand --wait 'On elevation, wait for the human decision (approved → go on, denied → 77, timeout → 75)'
            cand --fail-open 'Treat an unreachable or timed-out gateway as an allow, with a warning (never a denial, an elevation or a 4xx) [env: AGENTTRUST_FAIL_OPEN]'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;guard;report'= {
            cand --tool 'The tool (action) name (may also be given positionally, without --tool)'
            cand --duration-ms 'How long the call took, in milliseconds'
            cand --error-type 'What kind of failure (e.g. `exit:3`, `timeout`)'
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID]'
            cand --session 'Session id [env: AGENTTRUST_SESSION_ID]'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --success 'The call succeeded'
            cand --failure 'The call failed'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;guard;flush'= {
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;guard;session'= {
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand start 'Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`; nothing is printed when the gateway cannot open one'
            cand end 'Deliver the session''s telemetry and print `unset AGENTTRUST_SESSION_ID`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;guard;session;start'= {
            cand --agent 'The agent, by id or name [env: AGENTTRUST_AGENT_ID] [default: the agent token''s]; its id is exported'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --local 'Make the session id up here instead of opening it at the gateway (works offline; a policy with `require_registered_session` refuses such a session''s calls)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;guard;session;end'= {
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;guard;session;help'= {
            cand start 'Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`; nothing is printed when the gateway cannot open one'
            cand end 'Deliver the session''s telemetry and print `unset AGENTTRUST_SESSION_ID`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;guard;session;help;start'= {
        }
        &'agenttrust;guard;session;help;end'= {
        }
        &'agenttrust;guard;session;help;help'= {
        }
        &'agenttrust;guard;help'= {
            cand check 'Check a tool call before making it (silent on allow; the exit status is the answer)'
            cand run 'Check a tool call and, when allowed, run the command and report what happened'
            cand report 'Report what a tool call did (success or failure, duration)'
            cand flush 'Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)'
            cand session 'Start or end a shell session: `eval "$(agenttrust guard session start)"`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;guard;help;check'= {
        }
        &'agenttrust;guard;help;run'= {
        }
        &'agenttrust;guard;help;report'= {
        }
        &'agenttrust;guard;help;flush'= {
        }
        &'agenttrust;guard;help;session'= {
            cand start 'Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`; nothing is printed when the gateway cannot open one'
            cand end 'Deliver the session''s telemetry and print `unset AGENTTRUST_SESSION_ID`'
        }
        &'agenttrust;guard;help;session;start'= {
        }
        &'agenttrust;guard;help;session;end'= {
        }
        &'agenttrust;guard;help;help'= {
        }
        &'agenttrust;policies'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand get 'Print the stored policy document (JSON, whatever -o says)'
            cand set 'Replace the policy with a JSON file: validates it, shows what changes, confirms'
            cand validate 'Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid'
            cand test 'Evaluate a hypothetical check against the stored policy (or --file); records nothing'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;policies;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;policies;set'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;policies;validate'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;policies;test'= {
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID]'
            cand --tool 'The tool (action) name'
            cand --input 'A summary of the tool''s input (cut to 200 characters)'
            cand --effect 'What the call does [default: classified by the gateway]'
            cand --session 'Session id (its mode counts) [env: AGENTTRUST_SESSION_ID]'
            cand --file 'Evaluate this policy file (JSON, `-` = stdin) instead of the stored policy'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;policies;help'= {
            cand get 'Print the stored policy document (JSON, whatever -o says)'
            cand set 'Replace the policy with a JSON file: validates it, shows what changes, confirms'
            cand validate 'Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid'
            cand test 'Evaluate a hypothetical check against the stored policy (or --file); records nothing'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;policies;help;get'= {
        }
        &'agenttrust;policies;help;set'= {
        }
        &'agenttrust;policies;help;validate'= {
        }
        &'agenttrust;policies;help;test'= {
        }
        &'agenttrust;policies;help;help'= {
        }
        &'agenttrust;delegations'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Delegate capabilities from one agent to another (`-q` prints the delegation id)'
            cand list 'List the org''s delegations'
            cand get 'Show one delegation: status, scope, restrictions, chain'
            cand revoke 'Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)'
            cand session 'Open a session of the delegate bounded by the delegation (`-q` prints the session id)'
            cand tree 'Show delegations as an indented tree: every chain of the org, or the one containing ID'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;delegations;create'= {
            cand --from 'The delegating agent, by id or name [default with --parent: the parent delegation''s delegate]'
            cand --to 'The agent receiving the capabilities, by id or name'
            cand --scope 'Capabilities handed over: comma-separated or repeated (files:read,web:fetch)'
            cand --ttl 'Lifetime: 300, 300s, 5m, 1h [default: the gateway''s, 1h]'
            cand --restrictions 'Restrictions as a JSON object ({"paths":["/tmp/*"],"max_calls":10})'
            cand --restrictions-file 'Restrictions from a JSON file (`-` reads stdin)'
            cand --paths 'Path glob every absolute path in a call''s input must match (repeatable; no comma split)'
            cand --tools 'Tool-name globs the delegate may call: comma-separated or repeated'
            cand --effects 'Effects the delegate may cause, comma-separated: the names --effect takes'
            cand --max-calls 'Calls a session made from the delegation may make in all'
            cand --parent 'Re-delegate: the delegation this one is built on'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;delegations;list'= {
            cand --from 'Only delegations from this agent (id or name)'
            cand --to 'Only delegations to this agent (id or name)'
            cand --limit 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]'
            cand --cursor 'Start at this cursor (the `next_cursor` of a previous page)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --active 'Only active delegations'
            cand --inactive 'Only revoked or expired delegations'
            cand --all 'Follow `next_cursor` until the last page'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;delegations;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;delegations;revoke'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;delegations;session'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;delegations;tree'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;delegations;help'= {
            cand create 'Delegate capabilities from one agent to another (`-q` prints the delegation id)'
            cand list 'List the org''s delegations'
            cand get 'Show one delegation: status, scope, restrictions, chain'
            cand revoke 'Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)'
            cand session 'Open a session of the delegate bounded by the delegation (`-q` prints the session id)'
            cand tree 'Show delegations as an indented tree: every chain of the org, or the one containing ID'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;delegations;help;create'= {
        }
        &'agenttrust;delegations;help;list'= {
        }
        &'agenttrust;delegations;help;get'= {
        }
        &'agenttrust;delegations;help;revoke'= {
        }
        &'agenttrust;delegations;help;session'= {
        }
        &'agenttrust;delegations;help;tree'= {
        }
        &'agenttrust;delegations;help;help'= {
        }
        &'agenttrust;federation'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand providers 'External OIDC issuers the org trusts: add (by discovery), list, get, update, delete'
            cand subjects 'Which subject of a provider acts as which agent of the org: link, list, unlink'
            cand verify 'Verify an ID token (a provider''s or this gateway''s) for this org'
            cand tokens 'ID tokens signed by this gateway for its agents: issue, revoke'
            cand session 'Open a session from an ID token, bounded by its provider''s trust level'
            cand sessions 'Open a session from an ID token, bounded by its provider''s trust level'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;providers'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand add 'Register an issuer: its discovery document is fetched and its `issuer` must match (`-q` prints the provider id)'
            cand list 'List the org''s providers'
            cand get 'Show one provider'
            cand update 'Change a provider''s name, trust level, status, audience, subject claim or JWKS URL; `--status disabled` stops its tokens and its sessions at once'
            cand disable 'Stop trusting a provider: its tokens are refused and its sessions end at once'
            cand enable 'Trust a disabled provider again'
            cand remove 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)'
            cand delete 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;providers;add'= {
            cand --name 'A name to tell providers apart [default: the issuer]'
            cand --trust-level 'How far its sessions may go: low (reads), standard (up to mutating), high (policy)'
            cand --jwks-uri 'The issuer''s JWKS URL, for an issuer without a discovery document (skips discovery)'
            cand --audience 'The `aud` its tokens must carry [default: <gateway public URL>/orgs/<org id>]'
            cand --subject-claim 'The claim naming the external subject [default: sub]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --disabled 'Register it disabled'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;providers;list'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;providers;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;providers;update'= {
            cand --name 'name'
            cand --trust-level 'low, standard or high'
            cand --status 'active or disabled'
            cand --audience 'audience'
            cand --subject-claim 'subject-claim'
            cand --jwks-uri 'jwks-uri'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;providers;disable'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;providers;enable'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;providers;remove'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;providers;delete'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;providers;help'= {
            cand add 'Register an issuer: its discovery document is fetched and its `issuer` must match (`-q` prints the provider id)'
            cand list 'List the org''s providers'
            cand get 'Show one provider'
            cand update 'Change a provider''s name, trust level, status, audience, subject claim or JWKS URL; `--status disabled` stops its tokens and its sessions at once'
            cand disable 'Stop trusting a provider: its tokens are refused and its sessions end at once'
            cand enable 'Trust a disabled provider again'
            cand remove 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;providers;help;add'= {
        }
        &'agenttrust;federation;providers;help;list'= {
        }
        &'agenttrust;federation;providers;help;get'= {
        }
        &'agenttrust;federation;providers;help;update'= {
        }
        &'agenttrust;federation;providers;help;disable'= {
        }
        &'agenttrust;federation;providers;help;enable'= {
        }
        &'agenttrust;federation;providers;help;remove'= {
        }
        &'agenttrust;federation;providers;help;help'= {
        }
        &'agenttrust;federation;subjects'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand link 'Let SUBJECT of the provider act as an agent of the org'
            cand list 'List the provider''s linked subjects'
            cand unlink 'Remove a link (asks first; --yes without a terminal)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;subjects;link'= {
            cand --agent 'Agent id or name'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;subjects;list'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;subjects;unlink'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;subjects;help'= {
            cand link 'Let SUBJECT of the provider act as an agent of the org'
            cand list 'List the provider''s linked subjects'
            cand unlink 'Remove a link (asks first; --yes without a terminal)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;subjects;help;link'= {
        }
        &'agenttrust;federation;subjects;help;list'= {
        }
        &'agenttrust;federation;subjects;help;unlink'= {
        }
        &'agenttrust;federation;subjects;help;help'= {
        }
        &'agenttrust;federation;verify'= {
            cand --issuer 'The issuer it must come from'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;tokens'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand issue 'Issue an ID token signed by this gateway for an agent (`-q` prints only the token)'
            cand revoke 'Revoke an ID token this gateway issued: it fails verification here from then on'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;tokens;issue'= {
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID]'
            cand --audience 'Who the token is for: the relying party''s expected audience [default: this gateway]'
            cand --scopes 'Scopes (from the agent''s capabilities): comma-separated or repeated'
            cand --ttl 'Lifetime: 300, 300s, 5m, 1h [default: 5m]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;tokens;revoke'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;tokens;help'= {
            cand issue 'Issue an ID token signed by this gateway for an agent (`-q` prints only the token)'
            cand revoke 'Revoke an ID token this gateway issued: it fails verification here from then on'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;tokens;help;issue'= {
        }
        &'agenttrust;federation;tokens;help;revoke'= {
        }
        &'agenttrust;federation;tokens;help;help'= {
        }
        &'agenttrust;federation;session'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand init 'Open a federation session from an ID token (`-q` prints the session id)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;sessions'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand init 'Open a federation session from an ID token (`-q` prints the session id)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;session;init'= {
            cand --issuer 'The issuer it must come from'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;sessions;init'= {
            cand --issuer 'The issuer it must come from'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;federation;session;help'= {
            cand init 'Open a federation session from an ID token (`-q` prints the session id)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;session;help;init'= {
        }
        &'agenttrust;federation;session;help;help'= {
        }
        &'agenttrust;federation;sessions;help'= {
            cand init 'Open a federation session from an ID token (`-q` prints the session id)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;sessions;help;init'= {
        }
        &'agenttrust;federation;sessions;help;help'= {
        }
        &'agenttrust;federation;help'= {
            cand providers 'External OIDC issuers the org trusts: add (by discovery), list, get, update, delete'
            cand subjects 'Which subject of a provider acts as which agent of the org: link, list, unlink'
            cand verify 'Verify an ID token (a provider''s or this gateway''s) for this org'
            cand tokens 'ID tokens signed by this gateway for its agents: issue, revoke'
            cand session 'Open a session from an ID token, bounded by its provider''s trust level'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;federation;help;providers'= {
            cand add 'Register an issuer: its discovery document is fetched and its `issuer` must match (`-q` prints the provider id)'
            cand list 'List the org''s providers'
            cand get 'Show one provider'
            cand update 'Change a provider''s name, trust level, status, audience, subject claim or JWKS URL; `--status disabled` stops its tokens and its sessions at once'
            cand disable 'Stop trusting a provider: its tokens are refused and its sessions end at once'
            cand enable 'Trust a disabled provider again'
            cand remove 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)'
        }
        &'agenttrust;federation;help;providers;add'= {
        }
        &'agenttrust;federation;help;providers;list'= {
        }
        &'agenttrust;federation;help;providers;get'= {
        }
        &'agenttrust;federation;help;providers;update'= {
        }
        &'agenttrust;federation;help;providers;disable'= {
        }
        &'agenttrust;federation;help;providers;enable'= {
        }
        &'agenttrust;federation;help;providers;remove'= {
        }
        &'agenttrust;federation;help;subjects'= {
            cand link 'Let SUBJECT of the provider act as an agent of the org'
            cand list 'List the provider''s linked subjects'
            cand unlink 'Remove a link (asks first; --yes without a terminal)'
        }
        &'agenttrust;federation;help;subjects;link'= {
        }
        &'agenttrust;federation;help;subjects;list'= {
        }
        &'agenttrust;federation;help;subjects;unlink'= {
        }
        &'agenttrust;federation;help;verify'= {
        }
        &'agenttrust;federation;help;tokens'= {
            cand issue 'Issue an ID token signed by this gateway for an agent (`-q` prints only the token)'
            cand revoke 'Revoke an ID token this gateway issued: it fails verification here from then on'
        }
        &'agenttrust;federation;help;tokens;issue'= {
        }
        &'agenttrust;federation;help;tokens;revoke'= {
        }
        &'agenttrust;federation;help;session'= {
            cand init 'Open a federation session from an ID token (`-q` prints the session id)'
        }
        &'agenttrust;federation;help;session;init'= {
        }
        &'agenttrust;federation;help;help'= {
        }
        &'agenttrust;streaming'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook (`-q` prints the destination id)'
            cand list 'List the org''s destinations'
            cand get 'Show one destination (its token masked) and its delivery state'
            cand update 'Change a destination''s name, endpoint, token, batching, filter or state'
            cand delete 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)'
            cand remove 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)'
            cand logs 'A destination''s delivery attempts, newest first (--follow: print new ones as they come)'
            cand test 'Send one test event to a destination now (exit 1 when it does not arrive)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;streaming;create'= {
            cand --name 'A name to tell destinations apart'
            cand --type 'splunk (alias splunk_hec), datadog, elastic or webhook'
            cand --endpoint 'Where events are POSTed (https; http only to a loopback address unless the gateway allows it)'
            cand --endpoint-url 'Where events are POSTed (https; http only to a loopback address unless the gateway allows it)'
            cand --batch-size 'Events per batch, 1 to 1000 [default: 100]'
            cand --flush-interval 'Longest an event waits for a full batch: 30, 30s, 5m (1s to 1h) [default: 30s]'
            cand --filter 'Only these event kinds (check.decided) or prefixes (agent.*): comma-separated or repeated [default: every event]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --auth-token-stdin 'Read the destination''s token (HEC token, Datadog API key, Elasticsearch API key, webhook signing secret) from stdin'
            cand --skip-rejected-batches 'Pass over a batch the destination rejects as malformed (400, 413, 422) instead of retrying it until fixed'
            cand --inactive 'Create it paused (nothing is sent until `update --active true`)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;streaming;list'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;streaming;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;streaming;update'= {
            cand --name 'name'
            cand --endpoint 'endpoint'
            cand --endpoint-url 'endpoint'
            cand --active 'true: stream; false: pause (the cursor waits)'
            cand --batch-size 'batch-size'
            cand --flush-interval 'flush-interval'
            cand --filter 'Replace the filter: kinds or prefixes, comma-separated or repeated'
            cand --skip-rejected-batches 'skip-rejected-batches'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --auth-token-stdin 'Read a new token from stdin'
            cand --clear-filter 'Send every event again (remove the filter)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;streaming;delete'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;streaming;remove'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;streaming;logs'= {
            cand --limit 'How many records, 1 to 1000 [default: 50]'
            cand --interval 'With --follow: time between polls [default: 2s]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -f 'Keep polling and print each new record once (oldest first); Ctrl-C stops (exit 0)'
            cand --follow 'Keep polling and print each new record once (oldest first); Ctrl-C stops (exit 0)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;streaming;test'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;streaming;help'= {
            cand create 'Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook (`-q` prints the destination id)'
            cand list 'List the org''s destinations'
            cand get 'Show one destination (its token masked) and its delivery state'
            cand update 'Change a destination''s name, endpoint, token, batching, filter or state'
            cand delete 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)'
            cand logs 'A destination''s delivery attempts, newest first (--follow: print new ones as they come)'
            cand test 'Send one test event to a destination now (exit 1 when it does not arrive)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;streaming;help;create'= {
        }
        &'agenttrust;streaming;help;list'= {
        }
        &'agenttrust;streaming;help;get'= {
        }
        &'agenttrust;streaming;help;update'= {
        }
        &'agenttrust;streaming;help;delete'= {
        }
        &'agenttrust;streaming;help;logs'= {
        }
        &'agenttrust;streaming;help;test'= {
        }
        &'agenttrust;streaming;help;help'= {
        }
        &'agenttrust;mcp'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand servers 'MCP servers the org''s agents reach through the gateway: add, list, get, remove'
            cand tools 'The tools an agent may call on a server (its tools/list, filtered by the org''s policy; a tool needing a human''s approval is listed)'
            cand call 'Call a tool on a server through the gateway, checked by the Guardian first'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;mcp;servers'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand add 'Register a server (`-q` prints its id)'
            cand list 'List the org''s servers'
            cand get 'Show one server'
            cand remove 'Remove a server (asks first; --yes without a terminal)'
            cand delete 'Remove a server (asks first; --yes without a terminal)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;mcp;servers;add'= {
            cand --capabilities 'What the server offers (comma-separated or repeated)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --auth-token-stdin 'Read a bearer token for the upstream from stdin; the gateway sends it when it forwards, and never shows it again'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;mcp;servers;list'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;mcp;servers;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;mcp;servers;remove'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;mcp;servers;delete'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;mcp;servers;help'= {
            cand add 'Register a server (`-q` prints its id)'
            cand list 'List the org''s servers'
            cand get 'Show one server'
            cand remove 'Remove a server (asks first; --yes without a terminal)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;mcp;servers;help;add'= {
        }
        &'agenttrust;mcp;servers;help;list'= {
        }
        &'agenttrust;mcp;servers;help;get'= {
        }
        &'agenttrust;mcp;servers;help;remove'= {
        }
        &'agenttrust;mcp;servers;help;help'= {
        }
        &'agenttrust;mcp;tools'= {
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]'
            cand --session 'Session id [env: AGENTTRUST_SESSION_ID]'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;mcp;call'= {
            cand --args 'The tool''s arguments, a JSON object'
            cand --agent 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]'
            cand --session 'Session id [env: AGENTTRUST_SESSION_ID]'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;mcp;help'= {
            cand servers 'MCP servers the org''s agents reach through the gateway: add, list, get, remove'
            cand tools 'The tools an agent may call on a server (its tools/list, filtered by the org''s policy; a tool needing a human''s approval is listed)'
            cand call 'Call a tool on a server through the gateway, checked by the Guardian first'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;mcp;help;servers'= {
            cand add 'Register a server (`-q` prints its id)'
            cand list 'List the org''s servers'
            cand get 'Show one server'
            cand remove 'Remove a server (asks first; --yes without a terminal)'
        }
        &'agenttrust;mcp;help;servers;add'= {
        }
        &'agenttrust;mcp;help;servers;list'= {
        }
        &'agenttrust;mcp;help;servers;get'= {
        }
        &'agenttrust;mcp;help;servers;remove'= {
        }
        &'agenttrust;mcp;help;tools'= {
        }
        &'agenttrust;mcp;help;call'= {
        }
        &'agenttrust;mcp;help;help'= {
        }
        &'agenttrust;cards'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand generate 'Generate (or regenerate) an agent''s card from its record and the settings given here (kept for the next regeneration)'
            cand get 'Show an agent''s card (signed now by the gateway)'
            cand publish 'Publish an agent''s card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)'
            cand unpublish 'Take an agent''s card off the public route'
            cand verify 'Fetch a card by URL (or an agent''s public card on this gateway), check its signature against the issuer''s JWK Set, print its trust extension'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;cards;generate'= {
            cand --description 'What the agent does ("" clears it)'
            cand --skills-json 'The skills to list instead of the agent''s capabilities: a JSON array of {"id","name","description","tags":[…],"examples":[…]} ("[]" lists none)'
            cand --documentation-url 'Where the agent is documented ("" clears it)'
            cand --endpoint 'The agent''s own A2A JSON-RPC endpoint: messages to it are forwarded there ("" clears it)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;cards;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;cards;publish'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;cards;unpublish'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;cards;verify'= {
            cand --jwks 'The issuer''s JWK Set URL (default: see below)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;cards;help'= {
            cand generate 'Generate (or regenerate) an agent''s card from its record and the settings given here (kept for the next regeneration)'
            cand get 'Show an agent''s card (signed now by the gateway)'
            cand publish 'Publish an agent''s card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)'
            cand unpublish 'Take an agent''s card off the public route'
            cand verify 'Fetch a card by URL (or an agent''s public card on this gateway), check its signature against the issuer''s JWK Set, print its trust extension'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;cards;help;generate'= {
        }
        &'agenttrust;cards;help;get'= {
        }
        &'agenttrust;cards;help;publish'= {
        }
        &'agenttrust;cards;help;unpublish'= {
        }
        &'agenttrust;cards;help;verify'= {
        }
        &'agenttrust;cards;help;help'= {
        }
        &'agenttrust;a2a'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand send 'Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the target''s own A2A endpoint when its card names one, else it waits in the gateway'
            cand tasks 'The tasks waiting in the gateway: list, get, complete, cancel'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;a2a;send'= {
            cand --from 'The sending agent (id or name) [default with an agent token: the token''s agent]'
            cand --to 'The receiving agent (id or name)'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;a2a;tasks'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List tasks, newest first'
            cand get 'Show one task'
            cand complete 'Answer a task as its target: completed (default) or --failed, with a text reply'
            cand cancel 'Cancel a task that has not ended'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;a2a;tasks;list'= {
            cand --agent 'Only tasks this agent sent or received (id or name)'
            cand --status 'Only tasks in this status'
            cand --limit 'How many tasks at most (1-200)'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;a2a;tasks;get'= {
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;a2a;tasks;complete'= {
            cand --text 'The answer (also kept as the task''s artifact)'
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --failed 'The task failed (the text says why)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;a2a;tasks;cancel'= {
            cand --agent-token-file 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;a2a;tasks;help'= {
            cand list 'List tasks, newest first'
            cand get 'Show one task'
            cand complete 'Answer a task as its target: completed (default) or --failed, with a text reply'
            cand cancel 'Cancel a task that has not ended'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;a2a;tasks;help;list'= {
        }
        &'agenttrust;a2a;tasks;help;get'= {
        }
        &'agenttrust;a2a;tasks;help;complete'= {
        }
        &'agenttrust;a2a;tasks;help;cancel'= {
        }
        &'agenttrust;a2a;tasks;help;help'= {
        }
        &'agenttrust;a2a;help'= {
            cand send 'Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the target''s own A2A endpoint when its card names one, else it waits in the gateway'
            cand tasks 'The tasks waiting in the gateway: list, get, complete, cancel'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;a2a;help;send'= {
        }
        &'agenttrust;a2a;help;tasks'= {
            cand list 'List tasks, newest first'
            cand get 'Show one task'
            cand complete 'Answer a task as its target: completed (default) or --failed, with a text reply'
            cand cancel 'Cancel a task that has not ended'
        }
        &'agenttrust;a2a;help;tasks;list'= {
        }
        &'agenttrust;a2a;help;tasks;get'= {
        }
        &'agenttrust;a2a;help;tasks;complete'= {
        }
        &'agenttrust;a2a;help;tasks;cancel'= {
        }
        &'agenttrust;a2a;help;help'= {
        }
        &'agenttrust;keys'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Create a key; the secret is shown once (`-q` prints only the key)'
            cand list 'List keys, oldest first (never the secrets, only their prefixes)'
            cand revoke 'Revoke a key (asks first, warning when it is the key in use; --yes without a terminal). The org''s last active admin key cannot be revoked: create another admin key first'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;keys;create'= {
            cand --role 'admin manages the org; runtime may only check, report telemetry and handle tokens'
            cand --name 'A name to tell keys apart'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;keys;list'= {
            cand --limit 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]'
            cand --cursor 'Start at this cursor (the `next_cursor` of a previous page)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --all 'Follow `next_cursor` until the last page'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;keys;revoke'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;keys;help'= {
            cand create 'Create a key; the secret is shown once (`-q` prints only the key)'
            cand list 'List keys, oldest first (never the secrets, only their prefixes)'
            cand revoke 'Revoke a key (asks first, warning when it is the key in use; --yes without a terminal). The org''s last active admin key cannot be revoked: create another admin key first'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;keys;help;create'= {
        }
        &'agenttrust;keys;help;list'= {
        }
        &'agenttrust;keys;help;revoke'= {
        }
        &'agenttrust;keys;help;help'= {
        }
        &'agenttrust;orgs'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand security-settings 'Proof of possession and sender-constrained tokens'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;orgs;security-settings'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand get 'Show the org''s security settings'
            cand set 'Change them (a setting left out keeps its value)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;orgs;security-settings;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;orgs;security-settings;set'= {
            cand --require-proof-of-possession 'Issue WIMSE tokens only against a proof of possession of the agent''s key'
            cand --require-sender-constrained-tokens 'Accept agent credentials only with a DPoP proof of the agent''s key'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;orgs;security-settings;help'= {
            cand get 'Show the org''s security settings'
            cand set 'Change them (a setting left out keeps its value)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;orgs;security-settings;help;get'= {
        }
        &'agenttrust;orgs;security-settings;help;set'= {
        }
        &'agenttrust;orgs;security-settings;help;help'= {
        }
        &'agenttrust;orgs;help'= {
            cand security-settings 'Proof of possession and sender-constrained tokens'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;orgs;help;security-settings'= {
            cand get 'Show the org''s security settings'
            cand set 'Change them (a setting left out keeps its value)'
        }
        &'agenttrust;orgs;help;security-settings;get'= {
        }
        &'agenttrust;orgs;help;security-settings;set'= {
        }
        &'agenttrust;orgs;help;help'= {
        }
        &'agenttrust;audit'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List audit events in chain order, oldest first, filtered (`--all` follows every page)'
            cand get 'Show one audit event, with its detail and hashes'
            cand tail 'Print the latest events; with -f, follow new ones as they are appended (reconnecting)'
            cand verify 'Verify the org''s audit chain online, or an export file offline (exit 0 intact, 1 not)'
            cand export 'Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks'
            cand checkpoints 'List the signed checkpoints of the chain''s head, or sign the head now'
            cand keys 'Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;audit;list'= {
            cand --kind 'Only these kinds: exact (check.decided) or a prefix (federation.*); repeat or separate with commas'
            cand --agent 'Only events concerning this agent (its subject, its agent_id, or its actor)'
            cand --subject 'Only events about this subject: TYPE or TYPE:ID (agent:agt_…, policy)'
            cand --since 'Only events at or after this time: RFC 3339, or a duration ago (30m, 24h)'
            cand --until 'Only events at or before this time: RFC 3339, or a duration ago'
            cand --limit 'Events per page (1-1000) [default: the gateway''s, 100]'
            cand --cursor 'Start at this cursor (the `next_cursor` of a previous page)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --reverse 'Newest first'
            cand --all 'Follow `next_cursor` until the last page'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;audit;get'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;audit;tail'= {
            cand --kind 'Only these kinds: exact (check.decided) or a prefix (federation.*); repeat or separate with commas'
            cand --agent 'Only events concerning this agent (its subject, its agent_id, or its actor)'
            cand --subject 'Only events about this subject: TYPE or TYPE:ID (agent:agt_…, policy)'
            cand --since 'Only events at or after this time: RFC 3339, or a duration ago (30m, 24h)'
            cand --until 'Only events at or before this time: RFC 3339, or a duration ago'
            cand -n 'How many of the latest events to print first (0-1000)'
            cand --lines 'How many of the latest events to print first (0-1000)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -f 'Keep following: print each new event as it is appended; Ctrl-C stops (exit 0)'
            cand --follow 'Keep following: print each new event as it is appended; Ctrl-C stops (exit 0)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;audit;verify'= {
            cand --from-seq 'Start at this event (its link to the event before is checked against the stored hash)'
            cand --to-seq 'Stop at this event'
            cand --offline 'Verify this export file (`-` for stdin) without a gateway'
            cand --key 'With --offline: the gateway''s public keys, a JWK Set file (from `agenttrust audit keys`)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;audit;export'= {
            cand --since 'Start at the first event at or after this time: RFC 3339, or a duration ago (24h)'
            cand --from-seq 'Start at this event [default: 1, the whole chain]'
            cand --output-file 'Write to this file instead of stdout (replaced only once the export is complete)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;audit;checkpoints'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List signed checkpoints, oldest first'
            cand create 'Sign the chain''s head now'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;audit;checkpoints;list'= {
            cand --after-seq 'Checkpoints after this event'
            cand --limit 'Checkpoints per page (1-1000) [default: the gateway''s, 100]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --all 'Follow every page'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;audit;checkpoints;create'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;audit;checkpoints;help'= {
            cand list 'List signed checkpoints, oldest first'
            cand create 'Sign the chain''s head now'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;audit;checkpoints;help;list'= {
        }
        &'agenttrust;audit;checkpoints;help;create'= {
        }
        &'agenttrust;audit;checkpoints;help;help'= {
        }
        &'agenttrust;audit;keys'= {
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;audit;help'= {
            cand list 'List audit events in chain order, oldest first, filtered (`--all` follows every page)'
            cand get 'Show one audit event, with its detail and hashes'
            cand tail 'Print the latest events; with -f, follow new ones as they are appended (reconnecting)'
            cand verify 'Verify the org''s audit chain online, or an export file offline (exit 0 intact, 1 not)'
            cand export 'Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks'
            cand checkpoints 'List the signed checkpoints of the chain''s head, or sign the head now'
            cand keys 'Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;audit;help;list'= {
        }
        &'agenttrust;audit;help;get'= {
        }
        &'agenttrust;audit;help;tail'= {
        }
        &'agenttrust;audit;help;verify'= {
        }
        &'agenttrust;audit;help;export'= {
        }
        &'agenttrust;audit;help;checkpoints'= {
            cand list 'List signed checkpoints, oldest first'
            cand create 'Sign the chain''s head now'
        }
        &'agenttrust;audit;help;checkpoints;list'= {
        }
        &'agenttrust;audit;help;checkpoints;create'= {
        }
        &'agenttrust;audit;help;keys'= {
        }
        &'agenttrust;audit;help;help'= {
        }
        &'agenttrust;api'= {
            cand -d 'Request body: JSON text, @FILE to read a file, or - to read stdin'
            cand --data 'Request body: JSON text, @FILE to read a file, or - to read stdin'
            cand -H 'Extra request header (repeatable): ''Name: value'''
            cand --header 'Extra request header (repeatable): ''Name: value'''
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand -i 'Print the response status and headers on stderr'
            cand --include 'Print the response status and headers on stderr'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;bench'= {
            cand --connections 'Concurrent workers, each with its own connection (1-4096)'
            cand --duration 'How long each scenario is measured: 10s, 1m'
            cand --rate 'Open loop: requests a second in all, sent at fixed times [default: closed loop]'
            cand --warmup 'Load before each scenario''s measurement, not recorded: 1s, 0s for none'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand seed 'Fill the gateway with agents and checks through the API, to measure it at a size (like pgbench -i)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;bench;seed'= {
            cand --agents 'Agents to register'
            cand --checks 'Checks to make, spread over the new agents'
            cand --connections 'Concurrent workers, each with its own connection (1-4096)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;bench;help'= {
            cand seed 'Fill the gateway with agents and checks through the API, to measure it at a size (like pgbench -i)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;bench;help;seed'= {
        }
        &'agenttrust;bench;help;help'= {
        }
        &'agenttrust;completions'= {
            cand --write-dir 'Write every shell''s file into this dir (used to refresh completions/)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;man'= {
            cand --write-dir 'Write every page into this dir instead (used to refresh man/)'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;server'= {
            cand --listen 'Where to listen'
            cand --max-token-ttl 'The longest lifetime a token may be issued for (`3600`, `1h`)'
            cand --sqlite-synchronous 'When SQLite syncs a commit to disk: `full` (every commit survives an OS crash or power loss) or `normal` (faster; the last commits may be lost when the machine goes down)'
            cand --max-policy-rules 'Most rules an org''s policy may have'
            cand --max-policy-compiled-bytes 'Most memory, in bytes, an org''s compiled policy may take (its regexes above all)'
            cand --max-connections 'Most connections served at once; past it a connection gets a 503'
            cand --header-read-timeout 'How long a client may take to send a request''s headers (also ends idle connections)'
            cand --request-timeout 'How long one request, its body included, may take before it is answered with a 503'
            cand --max-delegation-ttl 'The longest lifetime a delegation may be created for; a longer `ttl_seconds` is refused'
            cand --audit-checkpoint-interval 'How often the head of every audit chain that grew is signed (a checkpoint an export is verified against offline); 0 signs only on demand (`audit export` asks for one)'
            cand --public-url 'The URL clients reach this gateway at (behind a load balancer: its URL); the issuer name of the ID tokens it signs [default: http://<listen address>]'
            cand --mcp-upstream-timeout 'How long a call to an MCP upstream may take, answer included (below --request-timeout)'
            cand --telemetry-rate-limit 'The most telemetry events per second one agent may report (a burst of ten seconds'' worth, at least one full report, passes); more is refused with 429 and Retry-After. Counted per replica [default: no limit]'
            cand --a2a-rate-limit 'The most A2A messages per second one agent may send (a burst of ten seconds'' worth passes); more is refused with 429 and Retry-After, before any check or task is stored. Counted per replica [default: no limit]'
            cand --mcp-session-idle-timeout 'How long an MCP session held by the proxy may go unused before it ends'
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --dev 'Create (once) an org and an admin key and save them as profile `local`'
            cand --federation-allow-http 'Fetch federation providers'' documents over plain http from any host (by default only https, or http to a loopback address)'
            cand --streaming-allow-http 'Stream the audit log to SIEM destinations over plain http on any host (by default only https, or http to a loopback address)'
            cand --mcp-allow-http 'Reach MCP upstreams over plain http on any host (by default only https, or http to a loopback address)'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand org 'Manage orgs in the database'
            cand key 'Mint org API keys in the database'
            cand signing-key 'The gateway''s signing keys (ID tokens): list, rotate, make a key-encryption key'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;server;org'= {
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Create an org; prints its id'
            cand list 'List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q` for the ids)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;server;org;create'= {
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;server;org;list'= {
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;server;org;help'= {
            cand create 'Create an org; prints its id'
            cand list 'List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q` for the ids)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;server;org;help;create'= {
        }
        &'agenttrust;server;org;help;list'= {
        }
        &'agenttrust;server;org;help;help'= {
        }
        &'agenttrust;server;key'= {
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Mint an API key for an org; prints the key once'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;server;key;create'= {
            cand --org 'The org, by id or name'
            cand --role 'admin (manages the org) or runtime (checks, telemetry, tokens)'
            cand --name 'A label to tell keys apart'
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;server;key;help'= {
            cand create 'Mint an API key for an org; prints the key once'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;server;key;help;create'= {
        }
        &'agenttrust;server;key;help;help'= {
        }
        &'agenttrust;server;signing-key'= {
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List the signing keys: which one signs, which are still published'
            cand rotate 'Make a new signing key; the old one stays published for --overlap, so the tokens it signed keep verifying until they expire'
            cand secret 'Print a new random key-encryption key, for --signing-key-secret-file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;server;signing-key;list'= {
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;server;signing-key;rotate'= {
            cand --overlap 'How long the old key stays published: at least the server''s --max-token-ttl'
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;server;signing-key;secret'= {
            cand --database-url '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]'
            cand --data-dir 'Directory of the default SQLite file [default: the platform''s data dir]'
            cand --signing-key-secret-file 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]'
            cand --profile 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]'
            cand --url 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]'
            cand -o 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --output 'Output format [env: AGENTTRUST_OUTPUT] [default: table]'
            cand --jq 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)'
            cand --timeout 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]'
            cand --ca-cert 'Trust this PEM CA certificate in addition to the system roots'
            cand --config-dir 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]'
            cand --color 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never'
            cand --insecure 'Skip TLS certificate verification (unsafe; warns)'
            cand --no-input 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]'
            cand -q 'Print only the primary value (an id, a token, a key)'
            cand --quiet 'Print only the primary value (an id, a token, a key)'
            cand -v 'More logging on stderr (-v debug, -vv everything)'
            cand --verbose 'More logging on stderr (-v debug, -vv everything)'
            cand --wide 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'agenttrust;server;signing-key;help'= {
            cand list 'List the signing keys: which one signs, which are still published'
            cand rotate 'Make a new signing key; the old one stays published for --overlap, so the tokens it signed keep verifying until they expire'
            cand secret 'Print a new random key-encryption key, for --signing-key-secret-file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;server;signing-key;help;list'= {
        }
        &'agenttrust;server;signing-key;help;rotate'= {
        }
        &'agenttrust;server;signing-key;help;secret'= {
        }
        &'agenttrust;server;signing-key;help;help'= {
        }
        &'agenttrust;server;help'= {
            cand org 'Manage orgs in the database'
            cand key 'Mint org API keys in the database'
            cand signing-key 'The gateway''s signing keys (ID tokens): list, rotate, make a key-encryption key'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;server;help;org'= {
            cand create 'Create an org; prints its id'
            cand list 'List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q` for the ids)'
        }
        &'agenttrust;server;help;org;create'= {
        }
        &'agenttrust;server;help;org;list'= {
        }
        &'agenttrust;server;help;key'= {
            cand create 'Mint an API key for an org; prints the key once'
        }
        &'agenttrust;server;help;key;create'= {
        }
        &'agenttrust;server;help;signing-key'= {
            cand list 'List the signing keys: which one signs, which are still published'
            cand rotate 'Make a new signing key; the old one stays published for --overlap, so the tokens it signed keep verifying until they expire'
            cand secret 'Print a new random key-encryption key, for --signing-key-secret-file'
        }
        &'agenttrust;server;help;signing-key;list'= {
        }
        &'agenttrust;server;help;signing-key;rotate'= {
        }
        &'agenttrust;server;help;signing-key;secret'= {
        }
        &'agenttrust;server;help;help'= {
        }
        &'agenttrust;help'= {
            cand login 'Validate an API key against the gateway and save it in a profile'
            cand profile 'Manage profiles (list, show, use, delete, import)'
            cand status 'Show the profile in use, the gateway''s health and whether the API key works'
            cand health 'Check the gateway''s health'
            cand version 'Print this CLI''s version and the gateway''s (when it answers; never fails)'
            cand agents 'Register, list, inspect and revoke agents'
            cand tokens 'Issue, introspect and revoke agent tokens'
            cand actions 'Check an action against policy (exit 0 allowed, 77 denied, 75 elevation required)'
            cand telemetry 'Report and list telemetry events'
            cand sessions 'Open, inspect, list, re-mode and unlock agent sessions'
            cand approvals 'List, approve, deny and wait for approvals (elevation)'
            cand guard 'The runtime seatbelt for shell-scripted agents: check, run, report (exit codes are the API)'
            cand policies 'Get, set, validate (offline) and test the org''s policy'
            cand delegations 'Delegate capabilities between agents: create, list, get, revoke, open a session, tree'
            cand federation 'Federation: trust external OIDC issuers (providers, subject links), verify and issue ID tokens, open sessions from them'
            cand streaming 'Stream the audit log to SIEMs (Splunk HEC, Datadog, Elasticsearch, signed webhooks): destinations, delivery logs, test deliveries'
            cand mcp 'MCP: register MCP servers, list the tools an agent may call there, call one through the gateway (checked by the Guardian)'
            cand cards 'Agent cards (A2A): generate, get, publish and unpublish an agent''s signed card; verify any card against its issuer''s keys'
            cand a2a 'Agent-to-agent messages through the gateway (checked by the Guardian): send, and the tasks waiting for their target'
            cand keys 'Manage org API keys'
            cand orgs 'The org''s security settings: proof of possession, sender-constrained tokens'
            cand audit 'Read the org''s audit log and verify its hash chain'
            cand api 'Send a raw request to the gateway with the profile''s URL and key (like `gh api`)'
            cand bench 'Measure the gateway under load: checks, introspections, token issues, telemetry, each beside /health (like pgbench)'
            cand completions 'Print a shell completion script'
            cand man 'Print a man page (`agenttrust man agents list | man -l -`)'
            cand server 'Run the embedded AgentTrust-compatible gateway'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agenttrust;help;login'= {
        }
        &'agenttrust;help;profile'= {
            cand list 'List profiles (`*` marks the default)'
            cand show 'Show a profile''s settings, secrets masked [default: the profile in use]'
            cand use 'Make a profile the default'
            cand set 'Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure, ca_cert (the API key is set with `agenttrust login`, which checks it)'
            cand rename 'Rename a profile (its key and its place as the default go with it)'
            cand delete 'Delete a profile and its credentials (asks first; --yes without a terminal)'
            cand import 'Import the SDK''s JSON config file (base_url, auth_url, api_key[, audit_url, timeout]) into the profile named by --profile (default `default`)'
        }
        &'agenttrust;help;profile;list'= {
        }
        &'agenttrust;help;profile;show'= {
        }
        &'agenttrust;help;profile;use'= {
        }
        &'agenttrust;help;profile;set'= {
        }
        &'agenttrust;help;profile;rename'= {
        }
        &'agenttrust;help;profile;delete'= {
        }
        &'agenttrust;help;profile;import'= {
        }
        &'agenttrust;help;status'= {
        }
        &'agenttrust;help;health'= {
        }
        &'agenttrust;help;version'= {
        }
        &'agenttrust;help;agents'= {
            cand create 'Register an agent'
            cand list 'List the org''s agents, oldest first (`--all` follows every page)'
            cand get 'Show one agent'
            cand revoke 'Revoke an agent and every live token of it (asks first; --yes without a terminal)'
            cand mode 'Set the agent''s own mode, binding it in every session: standard, read_only or locked'
            cand unlock 'Unlock an agent locked by an admin or by the agent-level lockout'
            cand keys 'The agent''s Ed25519 key (proof of possession, DPoP)'
        }
        &'agenttrust;help;agents;create'= {
        }
        &'agenttrust;help;agents;list'= {
        }
        &'agenttrust;help;agents;get'= {
        }
        &'agenttrust;help;agents;revoke'= {
        }
        &'agenttrust;help;agents;mode'= {
        }
        &'agenttrust;help;agents;unlock'= {
        }
        &'agenttrust;help;agents;keys'= {
            cand rotate 'Make a new key pair here and register its public half; the previous key keeps working for the grace period'
        }
        &'agenttrust;help;agents;keys;rotate'= {
        }
        &'agenttrust;help;tokens'= {
            cand issue 'Issue a token for an agent (`-q` prints only the token)'
            cand introspect 'Ask the gateway whether a token is active'
            cand list 'List tokens (active ones unless --include-inactive; never the secrets, which the gateway does not keep)'
            cand revoke 'Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)'
        }
        &'agenttrust;help;tokens;issue'= {
        }
        &'agenttrust;help;tokens;introspect'= {
        }
        &'agenttrust;help;tokens;list'= {
        }
        &'agenttrust;help;tokens;revoke'= {
        }
        &'agenttrust;help;actions'= {
            cand check 'Check a tool call against policy'
        }
        &'agenttrust;help;actions;check'= {
        }
        &'agenttrust;help;telemetry'= {
            cand report 'Report one event (e.g. tool_end after a tool ran)'
            cand list 'List stored events, oldest first (`--all` follows every page)'
        }
        &'agenttrust;help;telemetry;report'= {
        }
        &'agenttrust;help;telemetry;list'= {
        }
        &'agenttrust;help;sessions'= {
            cand init 'Open an MCP session of an agent with a server (`-q` prints the session id)'
            cand init-api 'Open a session from an agent token: its agent and scope ceiling come from the token'
            cand get 'Show one session: mode, scope ceiling, call counters'
            cand list 'List the org''s sessions, oldest first (`--all` follows every page; --watch)'
            cand set-mode 'Set a session''s mode: standard, read_only, elevated or locked'
            cand unlock 'Unlock a locked session (back to standard)'
        }
        &'agenttrust;help;sessions;init'= {
        }
        &'agenttrust;help;sessions;init-api'= {
        }
        &'agenttrust;help;sessions;get'= {
        }
        &'agenttrust;help;sessions;list'= {
        }
        &'agenttrust;help;sessions;set-mode'= {
        }
        &'agenttrust;help;sessions;unlock'= {
        }
        &'agenttrust;help;approvals'= {
            cand list 'List approvals, newest first (pending ones unless --status says otherwise; --watch)'
            cand get 'Show one approval'
            cand approve 'Approve a pending approval: the same action in the same session is then allowed'
            cand deny 'Deny a pending approval: the same action in the same session is then denied'
            cand wait 'Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)'
        }
        &'agenttrust;help;approvals;list'= {
        }
        &'agenttrust;help;approvals;get'= {
        }
        &'agenttrust;help;approvals;approve'= {
        }
        &'agenttrust;help;approvals;deny'= {
        }
        &'agenttrust;help;approvals;wait'= {
        }
        &'agenttrust;help;guard'= {
            cand check 'Check a tool call before making it (silent on allow; the exit status is the answer)'
            cand run 'Check a tool call and, when allowed, run the command and report what happened'
            cand report 'Report what a tool call did (success or failure, duration)'
            cand flush 'Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)'
            cand session 'Start or end a shell session: `eval "$(agenttrust guard session start)"`'
        }
        &'agenttrust;help;guard;check'= {
        }
        &'agenttrust;help;guard;run'= {
        }
        &'agenttrust;help;guard;report'= {
        }
        &'agenttrust;help;guard;flush'= {
        }
        &'agenttrust;help;guard;session'= {
            cand start 'Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`; nothing is printed when the gateway cannot open one'
            cand end 'Deliver the session''s telemetry and print `unset AGENTTRUST_SESSION_ID`'
        }
        &'agenttrust;help;guard;session;start'= {
        }
        &'agenttrust;help;guard;session;end'= {
        }
        &'agenttrust;help;policies'= {
            cand get 'Print the stored policy document (JSON, whatever -o says)'
            cand set 'Replace the policy with a JSON file: validates it, shows what changes, confirms'
            cand validate 'Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid'
            cand test 'Evaluate a hypothetical check against the stored policy (or --file); records nothing'
        }
        &'agenttrust;help;policies;get'= {
        }
        &'agenttrust;help;policies;set'= {
        }
        &'agenttrust;help;policies;validate'= {
        }
        &'agenttrust;help;policies;test'= {
        }
        &'agenttrust;help;delegations'= {
            cand create 'Delegate capabilities from one agent to another (`-q` prints the delegation id)'
            cand list 'List the org''s delegations'
            cand get 'Show one delegation: status, scope, restrictions, chain'
            cand revoke 'Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)'
            cand session 'Open a session of the delegate bounded by the delegation (`-q` prints the session id)'
            cand tree 'Show delegations as an indented tree: every chain of the org, or the one containing ID'
        }
        &'agenttrust;help;delegations;create'= {
        }
        &'agenttrust;help;delegations;list'= {
        }
        &'agenttrust;help;delegations;get'= {
        }
        &'agenttrust;help;delegations;revoke'= {
        }
        &'agenttrust;help;delegations;session'= {
        }
        &'agenttrust;help;delegations;tree'= {
        }
        &'agenttrust;help;federation'= {
            cand providers 'External OIDC issuers the org trusts: add (by discovery), list, get, update, delete'
            cand subjects 'Which subject of a provider acts as which agent of the org: link, list, unlink'
            cand verify 'Verify an ID token (a provider''s or this gateway''s) for this org'
            cand tokens 'ID tokens signed by this gateway for its agents: issue, revoke'
            cand session 'Open a session from an ID token, bounded by its provider''s trust level'
        }
        &'agenttrust;help;federation;providers'= {
            cand add 'Register an issuer: its discovery document is fetched and its `issuer` must match (`-q` prints the provider id)'
            cand list 'List the org''s providers'
            cand get 'Show one provider'
            cand update 'Change a provider''s name, trust level, status, audience, subject claim or JWKS URL; `--status disabled` stops its tokens and its sessions at once'
            cand disable 'Stop trusting a provider: its tokens are refused and its sessions end at once'
            cand enable 'Trust a disabled provider again'
            cand remove 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)'
        }
        &'agenttrust;help;federation;providers;add'= {
        }
        &'agenttrust;help;federation;providers;list'= {
        }
        &'agenttrust;help;federation;providers;get'= {
        }
        &'agenttrust;help;federation;providers;update'= {
        }
        &'agenttrust;help;federation;providers;disable'= {
        }
        &'agenttrust;help;federation;providers;enable'= {
        }
        &'agenttrust;help;federation;providers;remove'= {
        }
        &'agenttrust;help;federation;subjects'= {
            cand link 'Let SUBJECT of the provider act as an agent of the org'
            cand list 'List the provider''s linked subjects'
            cand unlink 'Remove a link (asks first; --yes without a terminal)'
        }
        &'agenttrust;help;federation;subjects;link'= {
        }
        &'agenttrust;help;federation;subjects;list'= {
        }
        &'agenttrust;help;federation;subjects;unlink'= {
        }
        &'agenttrust;help;federation;verify'= {
        }
        &'agenttrust;help;federation;tokens'= {
            cand issue 'Issue an ID token signed by this gateway for an agent (`-q` prints only the token)'
            cand revoke 'Revoke an ID token this gateway issued: it fails verification here from then on'
        }
        &'agenttrust;help;federation;tokens;issue'= {
        }
        &'agenttrust;help;federation;tokens;revoke'= {
        }
        &'agenttrust;help;federation;session'= {
            cand init 'Open a federation session from an ID token (`-q` prints the session id)'
        }
        &'agenttrust;help;federation;session;init'= {
        }
        &'agenttrust;help;streaming'= {
            cand create 'Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook (`-q` prints the destination id)'
            cand list 'List the org''s destinations'
            cand get 'Show one destination (its token masked) and its delivery state'
            cand update 'Change a destination''s name, endpoint, token, batching, filter or state'
            cand delete 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)'
            cand logs 'A destination''s delivery attempts, newest first (--follow: print new ones as they come)'
            cand test 'Send one test event to a destination now (exit 1 when it does not arrive)'
        }
        &'agenttrust;help;streaming;create'= {
        }
        &'agenttrust;help;streaming;list'= {
        }
        &'agenttrust;help;streaming;get'= {
        }
        &'agenttrust;help;streaming;update'= {
        }
        &'agenttrust;help;streaming;delete'= {
        }
        &'agenttrust;help;streaming;logs'= {
        }
        &'agenttrust;help;streaming;test'= {
        }
        &'agenttrust;help;mcp'= {
            cand servers 'MCP servers the org''s agents reach through the gateway: add, list, get, remove'
            cand tools 'The tools an agent may call on a server (its tools/list, filtered by the org''s policy; a tool needing a human''s approval is listed)'
            cand call 'Call a tool on a server through the gateway, checked by the Guardian first'
        }
        &'agenttrust;help;mcp;servers'= {
            cand add 'Register a server (`-q` prints its id)'
            cand list 'List the org''s servers'
            cand get 'Show one server'
            cand remove 'Remove a server (asks first; --yes without a terminal)'
        }
        &'agenttrust;help;mcp;servers;add'= {
        }
        &'agenttrust;help;mcp;servers;list'= {
        }
        &'agenttrust;help;mcp;servers;get'= {
        }
        &'agenttrust;help;mcp;servers;remove'= {
        }
        &'agenttrust;help;mcp;tools'= {
        }
        &'agenttrust;help;mcp;call'= {
        }
        &'agenttrust;help;cards'= {
            cand generate 'Generate (or regenerate) an agent''s card from its record and the settings given here (kept for the next regeneration)'
            cand get 'Show an agent''s card (signed now by the gateway)'
            cand publish 'Publish an agent''s card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)'
            cand unpublish 'Take an agent''s card off the public route'
            cand verify 'Fetch a card by URL (or an agent''s public card on this gateway), check its signature against the issuer''s JWK Set, print its trust extension'
        }
        &'agenttrust;help;cards;generate'= {
        }
        &'agenttrust;help;cards;get'= {
        }
        &'agenttrust;help;cards;publish'= {
        }
        &'agenttrust;help;cards;unpublish'= {
        }
        &'agenttrust;help;cards;verify'= {
        }
        &'agenttrust;help;a2a'= {
            cand send 'Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the target''s own A2A endpoint when its card names one, else it waits in the gateway'
            cand tasks 'The tasks waiting in the gateway: list, get, complete, cancel'
        }
        &'agenttrust;help;a2a;send'= {
        }
        &'agenttrust;help;a2a;tasks'= {
            cand list 'List tasks, newest first'
            cand get 'Show one task'
            cand complete 'Answer a task as its target: completed (default) or --failed, with a text reply'
            cand cancel 'Cancel a task that has not ended'
        }
        &'agenttrust;help;a2a;tasks;list'= {
        }
        &'agenttrust;help;a2a;tasks;get'= {
        }
        &'agenttrust;help;a2a;tasks;complete'= {
        }
        &'agenttrust;help;a2a;tasks;cancel'= {
        }
        &'agenttrust;help;keys'= {
            cand create 'Create a key; the secret is shown once (`-q` prints only the key)'
            cand list 'List keys, oldest first (never the secrets, only their prefixes)'
            cand revoke 'Revoke a key (asks first, warning when it is the key in use; --yes without a terminal). The org''s last active admin key cannot be revoked: create another admin key first'
        }
        &'agenttrust;help;keys;create'= {
        }
        &'agenttrust;help;keys;list'= {
        }
        &'agenttrust;help;keys;revoke'= {
        }
        &'agenttrust;help;orgs'= {
            cand security-settings 'Proof of possession and sender-constrained tokens'
        }
        &'agenttrust;help;orgs;security-settings'= {
            cand get 'Show the org''s security settings'
            cand set 'Change them (a setting left out keeps its value)'
        }
        &'agenttrust;help;orgs;security-settings;get'= {
        }
        &'agenttrust;help;orgs;security-settings;set'= {
        }
        &'agenttrust;help;audit'= {
            cand list 'List audit events in chain order, oldest first, filtered (`--all` follows every page)'
            cand get 'Show one audit event, with its detail and hashes'
            cand tail 'Print the latest events; with -f, follow new ones as they are appended (reconnecting)'
            cand verify 'Verify the org''s audit chain online, or an export file offline (exit 0 intact, 1 not)'
            cand export 'Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks'
            cand checkpoints 'List the signed checkpoints of the chain''s head, or sign the head now'
            cand keys 'Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)'
        }
        &'agenttrust;help;audit;list'= {
        }
        &'agenttrust;help;audit;get'= {
        }
        &'agenttrust;help;audit;tail'= {
        }
        &'agenttrust;help;audit;verify'= {
        }
        &'agenttrust;help;audit;export'= {
        }
        &'agenttrust;help;audit;checkpoints'= {
            cand list 'List signed checkpoints, oldest first'
            cand create 'Sign the chain''s head now'
        }
        &'agenttrust;help;audit;checkpoints;list'= {
        }
        &'agenttrust;help;audit;checkpoints;create'= {
        }
        &'agenttrust;help;audit;keys'= {
        }
        &'agenttrust;help;api'= {
        }
        &'agenttrust;help;bench'= {
            cand seed 'Fill the gateway with agents and checks through the API, to measure it at a size (like pgbench -i)'
        }
        &'agenttrust;help;bench;seed'= {
        }
        &'agenttrust;help;completions'= {
        }
        &'agenttrust;help;man'= {
        }
        &'agenttrust;help;server'= {
            cand org 'Manage orgs in the database'
            cand key 'Mint org API keys in the database'
            cand signing-key 'The gateway''s signing keys (ID tokens): list, rotate, make a key-encryption key'
        }
        &'agenttrust;help;server;org'= {
            cand create 'Create an org; prints its id'
            cand list 'List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q` for the ids)'
        }
        &'agenttrust;help;server;org;create'= {
        }
        &'agenttrust;help;server;org;list'= {
        }
        &'agenttrust;help;server;key'= {
            cand create 'Mint an API key for an org; prints the key once'
        }
        &'agenttrust;help;server;key;create'= {
        }
        &'agenttrust;help;server;signing-key'= {
            cand list 'List the signing keys: which one signs, which are still published'
            cand rotate 'Make a new signing key; the old one stays published for --overlap, so the tokens it signed keep verifying until they expire'
            cand secret 'Print a new random key-encryption key, for --signing-key-secret-file'
        }
        &'agenttrust;help;server;signing-key;list'= {
        }
        &'agenttrust;help;server;signing-key;rotate'= {
        }
        &'agenttrust;help;server;signing-key;secret'= {
        }
        &'agenttrust;help;help'= {
        }
    ]
    $completions[$command]
}
