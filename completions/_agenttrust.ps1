
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'agenttrust' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'agenttrust'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'agenttrust' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Validate an API key against the gateway and save it in a profile')
            [CompletionResult]::new('profile', 'profile', [CompletionResultType]::ParameterValue, 'Manage profiles (list, show, use, delete, import)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show the profile in use, the gateway''s health and whether the API key works')
            [CompletionResult]::new('health', 'health', [CompletionResultType]::ParameterValue, 'Check the gateway''s health')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Print this CLI''s version and the gateway''s (when it answers; never fails)')
            [CompletionResult]::new('agents', 'agents', [CompletionResultType]::ParameterValue, 'Register, list, inspect and revoke agents')
            [CompletionResult]::new('tokens', 'tokens', [CompletionResultType]::ParameterValue, 'Issue, introspect and revoke agent tokens')
            [CompletionResult]::new('actions', 'actions', [CompletionResultType]::ParameterValue, 'Check an action against policy (exit 0 allowed, 77 denied, 75 elevation required)')
            [CompletionResult]::new('telemetry', 'telemetry', [CompletionResultType]::ParameterValue, 'Report and list telemetry events')
            [CompletionResult]::new('sessions', 'sessions', [CompletionResultType]::ParameterValue, 'Open, inspect, list, re-mode and unlock agent sessions')
            [CompletionResult]::new('approvals', 'approvals', [CompletionResultType]::ParameterValue, 'List, approve, deny and wait for approvals (elevation)')
            [CompletionResult]::new('guard', 'guard', [CompletionResultType]::ParameterValue, 'The runtime seatbelt for shell-scripted agents: check, run, report (exit codes are the API)')
            [CompletionResult]::new('policies', 'policies', [CompletionResultType]::ParameterValue, 'Get, set, validate (offline) and test the org''s policy')
            [CompletionResult]::new('delegations', 'delegations', [CompletionResultType]::ParameterValue, 'Delegate capabilities between agents: create, list, get, revoke, open a session, tree')
            [CompletionResult]::new('federation', 'federation', [CompletionResultType]::ParameterValue, 'Federation: trust external OIDC issuers (providers, subject links), verify and issue ID tokens, open sessions from them')
            [CompletionResult]::new('streaming', 'streaming', [CompletionResultType]::ParameterValue, 'Stream the audit log to SIEMs (Splunk HEC, Datadog, Elasticsearch, signed webhooks): destinations, delivery logs, test deliveries')
            [CompletionResult]::new('mcp', 'mcp', [CompletionResultType]::ParameterValue, 'MCP: register MCP servers, list the tools an agent may call there, call one through the gateway (checked by the Guardian)')
            [CompletionResult]::new('cards', 'cards', [CompletionResultType]::ParameterValue, 'Agent cards (A2A): generate, get, publish and unpublish an agent''s signed card; verify any card against its issuer''s keys')
            [CompletionResult]::new('a2a', 'a2a', [CompletionResultType]::ParameterValue, 'Agent-to-agent messages through the gateway (checked by the Guardian): send, and the tasks waiting for their target')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'Manage org API keys')
            [CompletionResult]::new('orgs', 'orgs', [CompletionResultType]::ParameterValue, 'The org''s security settings: proof of possession, sender-constrained tokens')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Read the org''s audit log and verify its hash chain')
            [CompletionResult]::new('api', 'api', [CompletionResultType]::ParameterValue, 'Send a raw request to the gateway with the profile''s URL and key (like `gh api`)')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Measure the gateway under load: checks, introspections, token issues, telemetry, each beside /health (like pgbench)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print a man page (`agenttrust man agents list | man -l -`)')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run the embedded AgentTrust-compatible gateway')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;login' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--api-key-stdin', '--api-key-stdin', [CompletionResultType]::ParameterName, 'Read the API key from stdin instead of prompting')
            [CompletionResult]::new('--set-default', '--set-default', [CompletionResultType]::ParameterName, 'Make this profile the default (the first profile saved always becomes the default)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;profile' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List profiles (`*` marks the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a profile''s settings, secrets masked [default: the profile in use]')
            [CompletionResult]::new('use', 'use', [CompletionResultType]::ParameterValue, 'Make a profile the default')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure, ca_cert (the API key is set with `agenttrust login`, which checks it)')
            [CompletionResult]::new('rename', 'rename', [CompletionResultType]::ParameterValue, 'Rename a profile (its key and its place as the default go with it)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a profile and its credentials (asks first; --yes without a terminal)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import the SDK''s JSON config file (base_url, auth_url, api_key[, audit_url, timeout]) into the profile named by --profile (default `default`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;profile;list' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;profile;show' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--show-secrets', '--show-secrets', [CompletionResultType]::ParameterName, 'Show the API key in full')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;profile;use' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;profile;set' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;profile;rename' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;profile;delete' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;profile;import' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--set-default', '--set-default', [CompletionResultType]::ParameterName, 'Make the profile the default')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;profile;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List profiles (`*` marks the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a profile''s settings, secrets masked [default: the profile in use]')
            [CompletionResult]::new('use', 'use', [CompletionResultType]::ParameterValue, 'Make a profile the default')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure, ca_cert (the API key is set with `agenttrust login`, which checks it)')
            [CompletionResult]::new('rename', 'rename', [CompletionResultType]::ParameterValue, 'Rename a profile (its key and its place as the default go with it)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a profile and its credentials (asks first; --yes without a terminal)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import the SDK''s JSON config file (base_url, auth_url, api_key[, audit_url, timeout]) into the profile named by --profile (default `default`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;profile;help;list' {
            break
        }
        'agenttrust;profile;help;show' {
            break
        }
        'agenttrust;profile;help;use' {
            break
        }
        'agenttrust;profile;help;set' {
            break
        }
        'agenttrust;profile;help;rename' {
            break
        }
        'agenttrust;profile;help;delete' {
            break
        }
        'agenttrust;profile;help;import' {
            break
        }
        'agenttrust;profile;help;help' {
            break
        }
        'agenttrust;status' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;health' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;version' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;agents' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Register an agent')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s agents, oldest first (`--all` follows every page)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one agent')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an agent and every live token of it (asks first; --yes without a terminal)')
            [CompletionResult]::new('mode', 'mode', [CompletionResultType]::ParameterValue, 'Set the agent''s own mode, binding it in every session: standard, read_only or locked')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Unlock an agent locked by an admin or by the agent-level lockout')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'The agent''s Ed25519 key (proof of possession, DPoP)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;agents;create' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Agent name (unique in the org)')
            [CompletionResult]::new('--framework', '--framework', [CompletionResultType]::ParameterName, 'Framework the agent runs on [default: custom]')
            [CompletionResult]::new('--capabilities', '--capabilities', [CompletionResultType]::ParameterName, 'Capabilities: comma-separated or repeated (files:read,web:fetch)')
            [CompletionResult]::new('--metadata', '--metadata', [CompletionResultType]::ParameterName, 'Free-form metadata as a JSON object')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--generate-key', '--generate-key', [CompletionResultType]::ParameterName, 'Make an Ed25519 key pair here and register its public half; the private half is kept in the profile''s agent-key folder (0600), where `guard` and `actions check` find it')
            [CompletionResult]::new('--print-private-key', '--print-private-key', [CompletionResultType]::ParameterName, 'Print the private key (PKCS#8 PEM) once instead of keeping it in the profile''s agent-key folder')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;agents;list' {
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only agents with this status')
            [CompletionResult]::new('--name-prefix', '--name-prefix', [CompletionResultType]::ParameterName, 'Only agents whose name starts with this text')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]')
            [CompletionResult]::new('--cursor', '--cursor', [CompletionResultType]::ParameterName, 'Start at this cursor (the `next_cursor` of a previous page)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Follow `next_cursor` until the last page')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;agents;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;agents;revoke' {
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why (recorded in the audit log)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;agents;mode' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;agents;unlock' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;agents;keys' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Make a new key pair here and register its public half; the previous key keeps working for the grace period')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;agents;keys;rotate' {
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'How long the previous key keeps working (`0`, `300`, `15m`, `1h`) [default: 1h]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--print-private-key', '--print-private-key', [CompletionResultType]::ParameterName, 'Print the private key (PKCS#8 PEM) once instead of keeping it in the profile''s agent-key folder')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;agents;keys;help' {
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Make a new key pair here and register its public half; the previous key keeps working for the grace period')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;agents;keys;help;rotate' {
            break
        }
        'agenttrust;agents;keys;help;help' {
            break
        }
        'agenttrust;agents;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Register an agent')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s agents, oldest first (`--all` follows every page)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one agent')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an agent and every live token of it (asks first; --yes without a terminal)')
            [CompletionResult]::new('mode', 'mode', [CompletionResultType]::ParameterValue, 'Set the agent''s own mode, binding it in every session: standard, read_only or locked')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Unlock an agent locked by an admin or by the agent-level lockout')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'The agent''s Ed25519 key (proof of possession, DPoP)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;agents;help;create' {
            break
        }
        'agenttrust;agents;help;list' {
            break
        }
        'agenttrust;agents;help;get' {
            break
        }
        'agenttrust;agents;help;revoke' {
            break
        }
        'agenttrust;agents;help;mode' {
            break
        }
        'agenttrust;agents;help;unlock' {
            break
        }
        'agenttrust;agents;help;keys' {
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Make a new key pair here and register its public half; the previous key keeps working for the grace period')
            break
        }
        'agenttrust;agents;help;keys;rotate' {
            break
        }
        'agenttrust;agents;help;help' {
            break
        }
        'agenttrust;tokens' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a token for an agent (`-q` prints only the token)')
            [CompletionResult]::new('introspect', 'introspect', [CompletionResultType]::ParameterValue, 'Ask the gateway whether a token is active')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (active ones unless --include-inactive; never the secrets, which the gateway does not keep)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;tokens;issue' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID]')
            [CompletionResult]::new('--scopes', '--scopes', [CompletionResultType]::ParameterName, 'Scopes: comma-separated or repeated')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lifetime: 300, 300s, 5m, 1h [default: the gateway''s, 5m]')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Bind the token to a session [env: AGENTTRUST_SESSION_ID]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;tokens;introspect' {
            [CompletionResult]::new('--target', '--target', [CompletionResultType]::ParameterName, 'Where the token is being presented (e.g. mcp://filesystem)')
            [CompletionResult]::new('--required-scopes', '--required-scopes', [CompletionResultType]::ParameterName, 'Scopes the token must carry: comma-separated or repeated')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;tokens;list' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Only this agent''s tokens (id or name)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Tokens per page (1-1000) [default: the gateway''s, 100]')
            [CompletionResult]::new('--cursor', '--cursor', [CompletionResultType]::ParameterName, 'Start at this cursor (the `next_cursor` of a previous page)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--include-inactive', '--include-inactive', [CompletionResultType]::ParameterName, 'Also revoked and expired tokens, and those of inactive agents')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Follow `next_cursor` until the last page')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;tokens;revoke' {
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Revoke the token with this id instead (admin key)')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why (recorded in the audit log)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;tokens;help' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a token for an agent (`-q` prints only the token)')
            [CompletionResult]::new('introspect', 'introspect', [CompletionResultType]::ParameterValue, 'Ask the gateway whether a token is active')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (active ones unless --include-inactive; never the secrets, which the gateway does not keep)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;tokens;help;issue' {
            break
        }
        'agenttrust;tokens;help;introspect' {
            break
        }
        'agenttrust;tokens;help;list' {
            break
        }
        'agenttrust;tokens;help;revoke' {
            break
        }
        'agenttrust;tokens;help;help' {
            break
        }
        'agenttrust;actions' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check a tool call against policy')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;actions;check' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]')
            [CompletionResult]::new('--tool', '--tool', [CompletionResultType]::ParameterName, 'The tool (action) name (may also be given positionally, without --tool)')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'A summary of the tool''s input (cut to 200 characters)')
            [CompletionResult]::new('--effect', '--effect', [CompletionResultType]::ParameterName, 'What the call does [default: classified by the gateway]')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Session id [env: AGENTTRUST_SESSION_ID]')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;actions;help' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check a tool call against policy')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;actions;help;check' {
            break
        }
        'agenttrust;actions;help;help' {
            break
        }
        'agenttrust;telemetry' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'Report one event (e.g. tool_end after a tool ran)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List stored events, oldest first (`--all` follows every page)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;telemetry;report' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID]')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Session id [env: AGENTTRUST_SESSION_ID]')
            [CompletionResult]::new('--event-type', '--event-type', [CompletionResultType]::ParameterName, 'Event type (the SDKs'' names; a typo would be stored as an event nobody reads)')
            [CompletionResult]::new('--tool', '--tool', [CompletionResultType]::ParameterName, 'The tool''s name')
            [CompletionResult]::new('--duration-ms', '--duration-ms', [CompletionResultType]::ParameterName, 'How long the tool ran, in milliseconds')
            [CompletionResult]::new('--error-type', '--error-type', [CompletionResultType]::ParameterName, 'The kind of error on failure (e.g. TimeoutError)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--success', '--success', [CompletionResultType]::ParameterName, 'The tool succeeded [default: inferred from the event type]')
            [CompletionResult]::new('--failure', '--failure', [CompletionResultType]::ParameterName, 'The tool failed')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;telemetry;list' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Only this agent''s events (id or name)')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Only this session''s events')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]')
            [CompletionResult]::new('--cursor', '--cursor', [CompletionResultType]::ParameterName, 'Start at this cursor (the `next_cursor` of a previous page)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Follow `next_cursor` until the last page')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;telemetry;help' {
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'Report one event (e.g. tool_end after a tool ran)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List stored events, oldest first (`--all` follows every page)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;telemetry;help;report' {
            break
        }
        'agenttrust;telemetry;help;list' {
            break
        }
        'agenttrust;telemetry;help;help' {
            break
        }
        'agenttrust;sessions' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Open an MCP session of an agent with a server (`-q` prints the session id)')
            [CompletionResult]::new('init-api', 'init-api', [CompletionResultType]::ParameterValue, 'Open a session from an agent token: its agent and scope ceiling come from the token')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one session: mode, scope ceiling, call counters')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s sessions, oldest first (`--all` follows every page; --watch)')
            [CompletionResult]::new('set-mode', 'set-mode', [CompletionResultType]::ParameterValue, 'Set a session''s mode: standard, read_only, elevated or locked')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Unlock a locked session (back to standard)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;sessions;init' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The MCP server''s id (a server registered with `agenttrust mcp servers add`)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;sessions;init-api' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;sessions;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;sessions;list' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Only this agent''s sessions (id or name)')
            [CompletionResult]::new('--mode', '--mode', [CompletionResultType]::ParameterName, 'Only sessions in this mode')
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'Only sessions from this source: sdk, mcp, api, a2a, federation')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]')
            [CompletionResult]::new('--cursor', '--cursor', [CompletionResultType]::ParameterName, 'Start at this cursor (the `next_cursor` of a previous page)')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'With --watch: time between polls, 1s to 1h')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Follow `next_cursor` until the last page')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;sessions;set-mode' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;sessions;unlock' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;sessions;help' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Open an MCP session of an agent with a server (`-q` prints the session id)')
            [CompletionResult]::new('init-api', 'init-api', [CompletionResultType]::ParameterValue, 'Open a session from an agent token: its agent and scope ceiling come from the token')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one session: mode, scope ceiling, call counters')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s sessions, oldest first (`--all` follows every page; --watch)')
            [CompletionResult]::new('set-mode', 'set-mode', [CompletionResultType]::ParameterValue, 'Set a session''s mode: standard, read_only, elevated or locked')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Unlock a locked session (back to standard)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;sessions;help;init' {
            break
        }
        'agenttrust;sessions;help;init-api' {
            break
        }
        'agenttrust;sessions;help;get' {
            break
        }
        'agenttrust;sessions;help;list' {
            break
        }
        'agenttrust;sessions;help;set-mode' {
            break
        }
        'agenttrust;sessions;help;unlock' {
            break
        }
        'agenttrust;sessions;help;help' {
            break
        }
        'agenttrust;approvals' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List approvals, newest first (pending ones unless --status says otherwise; --watch)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one approval')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a pending approval: the same action in the same session is then allowed')
            [CompletionResult]::new('deny', 'deny', [CompletionResultType]::ParameterValue, 'Deny a pending approval: the same action in the same session is then denied')
            [CompletionResult]::new('wait', 'wait', [CompletionResultType]::ParameterValue, 'Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;approvals;list' {
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only approvals with this status')
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Only this agent''s approvals (id or name)')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Only this session''s approvals')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]')
            [CompletionResult]::new('--cursor', '--cursor', [CompletionResultType]::ParameterName, 'Start at this cursor (the `next_cursor` of a previous page)')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'With --watch: time between polls, 1s to 1h')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Follow `next_cursor` until the last page')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;approvals;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;approvals;approve' {
            [CompletionResult]::new('--decided-by', '--decided-by', [CompletionResultType]::ParameterName, 'Who decides (recorded) [default: $USER, else `cli`]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;approvals;deny' {
            [CompletionResult]::new('--decided-by', '--decided-by', [CompletionResultType]::ParameterName, 'Who decides (recorded) [default: $USER, else `cli`]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;approvals;wait' {
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'Time between polls: 500ms, 2s, 1m')
            [CompletionResult]::new('--wait-timeout', '--wait-timeout', [CompletionResultType]::ParameterName, 'How long to wait in all: 30s, 5m, 1h30m [default: 5m]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;approvals;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List approvals, newest first (pending ones unless --status says otherwise; --watch)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one approval')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a pending approval: the same action in the same session is then allowed')
            [CompletionResult]::new('deny', 'deny', [CompletionResultType]::ParameterValue, 'Deny a pending approval: the same action in the same session is then denied')
            [CompletionResult]::new('wait', 'wait', [CompletionResultType]::ParameterValue, 'Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;approvals;help;list' {
            break
        }
        'agenttrust;approvals;help;get' {
            break
        }
        'agenttrust;approvals;help;approve' {
            break
        }
        'agenttrust;approvals;help;deny' {
            break
        }
        'agenttrust;approvals;help;wait' {
            break
        }
        'agenttrust;approvals;help;help' {
            break
        }
        'agenttrust;guard' {
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check a tool call before making it (silent on allow; the exit status is the answer)')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Check a tool call and, when allowed, run the command and report what happened')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'Report what a tool call did (success or failure, duration)')
            [CompletionResult]::new('flush', 'flush', [CompletionResultType]::ParameterValue, 'Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)')
            [CompletionResult]::new('session', 'session', [CompletionResultType]::ParameterValue, 'Start or end a shell session: `eval "$(agenttrust guard session start)"`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;guard;check' {
            [CompletionResult]::new('--tool', '--tool', [CompletionResultType]::ParameterName, 'The tool (action) name (may also be given positionally, without --tool)')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'A summary of the tool''s input (cut to 200 characters)')
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Session id [env: AGENTTRUST_SESSION_ID] [default: a fresh one]')
            [CompletionResult]::new('--effect', '--effect', [CompletionResultType]::ParameterName, 'What the call does [default: classified by the gateway]')
            [CompletionResult]::new('--wait-timeout', '--wait-timeout', [CompletionResultType]::ParameterName, 'With --wait, how long to wait in all: 30s, 5m, 1h30m [default: 5m] (for compatibility, --timeout alone still sets it too)')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'On elevation, wait for the human decision (approved → go on, denied → 77, timeout → 75)')
            [CompletionResult]::new('--fail-open', '--fail-open', [CompletionResultType]::ParameterName, 'Treat an unreachable or timed-out gateway as an allow, with a warning (never a denial, an elevation or a 4xx) [env: AGENTTRUST_FAIL_OPEN]')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;guard;run' {
            [CompletionResult]::new('--tool', '--tool', [CompletionResultType]::ParameterName, 'The tool (action) name (also accepted positionally: `guard run NAME -- COMMAND…`)')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'More context for the input summary, after the command line (which is always sent)')
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Session id [env: AGENTTRUST_SESSION_ID] [default: a fresh one]')
            [CompletionResult]::new('--effect', '--effect', [CompletionResultType]::ParameterName, 'What the call does [default: classified by the gateway]')
            [CompletionResult]::new('--wait-timeout', '--wait-timeout', [CompletionResultType]::ParameterName, 'With --wait, how long to wait in all: 30s, 5m, 1h30m [default: 5m] (for compatibility, --timeout alone still sets it too)')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--tool-from-argv0', '--tool-from-argv0', [CompletionResultType]::ParameterName, 'Name the tool after the command (argv[0]''s file name), so the checked tool is the one that runs; a --tool naming another is refused')
            [CompletionResult]::new('--log-inputs', '--log-inputs', [CompletionResultType]::ParameterName, 'Accepted for compatibility: the command line is always the input summary now')
            [CompletionResult]::new('--pass-credentials', '--pass-credentials', [CompletionResultType]::ParameterName, 'Let the command inherit AGENTTRUST_API_KEY and AGENTTRUST_AGENT_TOKEN (scrubbed by default: the wrapped tool must not act with the agent''s credentials)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'On elevation, wait for the human decision (approved → go on, denied → 77, timeout → 75)')
            [CompletionResult]::new('--fail-open', '--fail-open', [CompletionResultType]::ParameterName, 'Treat an unreachable or timed-out gateway as an allow, with a warning (never a denial, an elevation or a 4xx) [env: AGENTTRUST_FAIL_OPEN]')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;guard;report' {
            [CompletionResult]::new('--tool', '--tool', [CompletionResultType]::ParameterName, 'The tool (action) name (may also be given positionally, without --tool)')
            [CompletionResult]::new('--duration-ms', '--duration-ms', [CompletionResultType]::ParameterName, 'How long the call took, in milliseconds')
            [CompletionResult]::new('--error-type', '--error-type', [CompletionResultType]::ParameterName, 'What kind of failure (e.g. `exit:3`, `timeout`)')
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID]')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Session id [env: AGENTTRUST_SESSION_ID]')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--success', '--success', [CompletionResultType]::ParameterName, 'The call succeeded')
            [CompletionResult]::new('--failure', '--failure', [CompletionResultType]::ParameterName, 'The call failed')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;guard;flush' {
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;guard;session' {
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`; nothing is printed when the gateway cannot open one')
            [CompletionResult]::new('end', 'end', [CompletionResultType]::ParameterValue, 'Deliver the session''s telemetry and print `unset AGENTTRUST_SESSION_ID`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;guard;session;start' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'The agent, by id or name [env: AGENTTRUST_AGENT_ID] [default: the agent token''s]; its id is exported')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--local', '--local', [CompletionResultType]::ParameterName, 'Make the session id up here instead of opening it at the gateway (works offline; a policy with `require_registered_session` refuses such a session''s calls)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;guard;session;end' {
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted (the gateway takes the agent from it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;guard;session;help' {
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`; nothing is printed when the gateway cannot open one')
            [CompletionResult]::new('end', 'end', [CompletionResultType]::ParameterValue, 'Deliver the session''s telemetry and print `unset AGENTTRUST_SESSION_ID`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;guard;session;help;start' {
            break
        }
        'agenttrust;guard;session;help;end' {
            break
        }
        'agenttrust;guard;session;help;help' {
            break
        }
        'agenttrust;guard;help' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check a tool call before making it (silent on allow; the exit status is the answer)')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Check a tool call and, when allowed, run the command and report what happened')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'Report what a tool call did (success or failure, duration)')
            [CompletionResult]::new('flush', 'flush', [CompletionResultType]::ParameterValue, 'Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)')
            [CompletionResult]::new('session', 'session', [CompletionResultType]::ParameterValue, 'Start or end a shell session: `eval "$(agenttrust guard session start)"`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;guard;help;check' {
            break
        }
        'agenttrust;guard;help;run' {
            break
        }
        'agenttrust;guard;help;report' {
            break
        }
        'agenttrust;guard;help;flush' {
            break
        }
        'agenttrust;guard;help;session' {
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`; nothing is printed when the gateway cannot open one')
            [CompletionResult]::new('end', 'end', [CompletionResultType]::ParameterValue, 'Deliver the session''s telemetry and print `unset AGENTTRUST_SESSION_ID`')
            break
        }
        'agenttrust;guard;help;session;start' {
            break
        }
        'agenttrust;guard;help;session;end' {
            break
        }
        'agenttrust;guard;help;help' {
            break
        }
        'agenttrust;policies' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print the stored policy document (JSON, whatever -o says)')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Replace the policy with a JSON file: validates it, shows what changes, confirms')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Evaluate a hypothetical check against the stored policy (or --file); records nothing')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;policies;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;policies;set' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;policies;validate' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;policies;test' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID]')
            [CompletionResult]::new('--tool', '--tool', [CompletionResultType]::ParameterName, 'The tool (action) name')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'A summary of the tool''s input (cut to 200 characters)')
            [CompletionResult]::new('--effect', '--effect', [CompletionResultType]::ParameterName, 'What the call does [default: classified by the gateway]')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Session id (its mode counts) [env: AGENTTRUST_SESSION_ID]')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Evaluate this policy file (JSON, `-` = stdin) instead of the stored policy')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;policies;help' {
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print the stored policy document (JSON, whatever -o says)')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Replace the policy with a JSON file: validates it, shows what changes, confirms')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Evaluate a hypothetical check against the stored policy (or --file); records nothing')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;policies;help;get' {
            break
        }
        'agenttrust;policies;help;set' {
            break
        }
        'agenttrust;policies;help;validate' {
            break
        }
        'agenttrust;policies;help;test' {
            break
        }
        'agenttrust;policies;help;help' {
            break
        }
        'agenttrust;delegations' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Delegate capabilities from one agent to another (`-q` prints the delegation id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s delegations')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one delegation: status, scope, restrictions, chain')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)')
            [CompletionResult]::new('session', 'session', [CompletionResultType]::ParameterValue, 'Open a session of the delegate bounded by the delegation (`-q` prints the session id)')
            [CompletionResult]::new('tree', 'tree', [CompletionResultType]::ParameterValue, 'Show delegations as an indented tree: every chain of the org, or the one containing ID')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;delegations;create' {
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'The delegating agent, by id or name [default with --parent: the parent delegation''s delegate]')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'The agent receiving the capabilities, by id or name')
            [CompletionResult]::new('--scope', '--scope', [CompletionResultType]::ParameterName, 'Capabilities handed over: comma-separated or repeated (files:read,web:fetch)')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lifetime: 300, 300s, 5m, 1h [default: the gateway''s, 1h]')
            [CompletionResult]::new('--restrictions', '--restrictions', [CompletionResultType]::ParameterName, 'Restrictions as a JSON object ({"paths":["/tmp/*"],"max_calls":10})')
            [CompletionResult]::new('--restrictions-file', '--restrictions-file', [CompletionResultType]::ParameterName, 'Restrictions from a JSON file (`-` reads stdin)')
            [CompletionResult]::new('--paths', '--paths', [CompletionResultType]::ParameterName, 'Path glob every absolute path in a call''s input must match (repeatable; no comma split)')
            [CompletionResult]::new('--tools', '--tools', [CompletionResultType]::ParameterName, 'Tool-name globs the delegate may call: comma-separated or repeated')
            [CompletionResult]::new('--effects', '--effects', [CompletionResultType]::ParameterName, 'Effects the delegate may cause, comma-separated: the names --effect takes')
            [CompletionResult]::new('--max-calls', '--max-calls', [CompletionResultType]::ParameterName, 'Calls a session made from the delegation may make in all')
            [CompletionResult]::new('--parent', '--parent', [CompletionResultType]::ParameterName, 'Re-delegate: the delegation this one is built on')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;delegations;list' {
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Only delegations from this agent (id or name)')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Only delegations to this agent (id or name)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]')
            [CompletionResult]::new('--cursor', '--cursor', [CompletionResultType]::ParameterName, 'Start at this cursor (the `next_cursor` of a previous page)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--active', '--active', [CompletionResultType]::ParameterName, 'Only active delegations')
            [CompletionResult]::new('--inactive', '--inactive', [CompletionResultType]::ParameterName, 'Only revoked or expired delegations')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Follow `next_cursor` until the last page')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;delegations;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;delegations;revoke' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;delegations;session' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;delegations;tree' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;delegations;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Delegate capabilities from one agent to another (`-q` prints the delegation id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s delegations')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one delegation: status, scope, restrictions, chain')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)')
            [CompletionResult]::new('session', 'session', [CompletionResultType]::ParameterValue, 'Open a session of the delegate bounded by the delegation (`-q` prints the session id)')
            [CompletionResult]::new('tree', 'tree', [CompletionResultType]::ParameterValue, 'Show delegations as an indented tree: every chain of the org, or the one containing ID')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;delegations;help;create' {
            break
        }
        'agenttrust;delegations;help;list' {
            break
        }
        'agenttrust;delegations;help;get' {
            break
        }
        'agenttrust;delegations;help;revoke' {
            break
        }
        'agenttrust;delegations;help;session' {
            break
        }
        'agenttrust;delegations;help;tree' {
            break
        }
        'agenttrust;delegations;help;help' {
            break
        }
        'agenttrust;federation' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'External OIDC issuers the org trusts: add (by discovery), list, get, update, delete')
            [CompletionResult]::new('subjects', 'subjects', [CompletionResultType]::ParameterValue, 'Which subject of a provider acts as which agent of the org: link, list, unlink')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify an ID token (a provider''s or this gateway''s) for this org')
            [CompletionResult]::new('tokens', 'tokens', [CompletionResultType]::ParameterValue, 'ID tokens signed by this gateway for its agents: issue, revoke')
            [CompletionResult]::new('session', 'session', [CompletionResultType]::ParameterValue, 'Open a session from an ID token, bounded by its provider''s trust level')
            [CompletionResult]::new('sessions', 'sessions', [CompletionResultType]::ParameterValue, 'Open a session from an ID token, bounded by its provider''s trust level')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;providers' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register an issuer: its discovery document is fetched and its `issuer` must match (`-q` prints the provider id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s providers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one provider')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a provider''s name, trust level, status, audience, subject claim or JWKS URL; `--status disabled` stops its tokens and its sessions at once')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Stop trusting a provider: its tokens are refused and its sessions end at once')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Trust a disabled provider again')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;providers;add' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A name to tell providers apart [default: the issuer]')
            [CompletionResult]::new('--trust-level', '--trust-level', [CompletionResultType]::ParameterName, 'How far its sessions may go: low (reads), standard (up to mutating), high (policy)')
            [CompletionResult]::new('--jwks-uri', '--jwks-uri', [CompletionResultType]::ParameterName, 'The issuer''s JWKS URL, for an issuer without a discovery document (skips discovery)')
            [CompletionResult]::new('--audience', '--audience', [CompletionResultType]::ParameterName, 'The `aud` its tokens must carry [default: <gateway public URL>/orgs/<org id>]')
            [CompletionResult]::new('--subject-claim', '--subject-claim', [CompletionResultType]::ParameterName, 'The claim naming the external subject [default: sub]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--disabled', '--disabled', [CompletionResultType]::ParameterName, 'Register it disabled')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;providers;list' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;providers;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;providers;update' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'name')
            [CompletionResult]::new('--trust-level', '--trust-level', [CompletionResultType]::ParameterName, 'low, standard or high')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'active or disabled')
            [CompletionResult]::new('--audience', '--audience', [CompletionResultType]::ParameterName, 'audience')
            [CompletionResult]::new('--subject-claim', '--subject-claim', [CompletionResultType]::ParameterName, 'subject-claim')
            [CompletionResult]::new('--jwks-uri', '--jwks-uri', [CompletionResultType]::ParameterName, 'jwks-uri')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;providers;disable' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;providers;enable' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;providers;remove' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;providers;delete' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;providers;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register an issuer: its discovery document is fetched and its `issuer` must match (`-q` prints the provider id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s providers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one provider')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a provider''s name, trust level, status, audience, subject claim or JWKS URL; `--status disabled` stops its tokens and its sessions at once')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Stop trusting a provider: its tokens are refused and its sessions end at once')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Trust a disabled provider again')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;providers;help;add' {
            break
        }
        'agenttrust;federation;providers;help;list' {
            break
        }
        'agenttrust;federation;providers;help;get' {
            break
        }
        'agenttrust;federation;providers;help;update' {
            break
        }
        'agenttrust;federation;providers;help;disable' {
            break
        }
        'agenttrust;federation;providers;help;enable' {
            break
        }
        'agenttrust;federation;providers;help;remove' {
            break
        }
        'agenttrust;federation;providers;help;help' {
            break
        }
        'agenttrust;federation;subjects' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('link', 'link', [CompletionResultType]::ParameterValue, 'Let SUBJECT of the provider act as an agent of the org')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the provider''s linked subjects')
            [CompletionResult]::new('unlink', 'unlink', [CompletionResultType]::ParameterValue, 'Remove a link (asks first; --yes without a terminal)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;subjects;link' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;subjects;list' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;subjects;unlink' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;subjects;help' {
            [CompletionResult]::new('link', 'link', [CompletionResultType]::ParameterValue, 'Let SUBJECT of the provider act as an agent of the org')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the provider''s linked subjects')
            [CompletionResult]::new('unlink', 'unlink', [CompletionResultType]::ParameterValue, 'Remove a link (asks first; --yes without a terminal)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;subjects;help;link' {
            break
        }
        'agenttrust;federation;subjects;help;list' {
            break
        }
        'agenttrust;federation;subjects;help;unlink' {
            break
        }
        'agenttrust;federation;subjects;help;help' {
            break
        }
        'agenttrust;federation;verify' {
            [CompletionResult]::new('--issuer', '--issuer', [CompletionResultType]::ParameterName, 'The issuer it must come from')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;tokens' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue an ID token signed by this gateway for an agent (`-q` prints only the token)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an ID token this gateway issued: it fails verification here from then on')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;tokens;issue' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID]')
            [CompletionResult]::new('--audience', '--audience', [CompletionResultType]::ParameterName, 'Who the token is for: the relying party''s expected audience [default: this gateway]')
            [CompletionResult]::new('--scopes', '--scopes', [CompletionResultType]::ParameterName, 'Scopes (from the agent''s capabilities): comma-separated or repeated')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lifetime: 300, 300s, 5m, 1h [default: 5m]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;tokens;revoke' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;tokens;help' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue an ID token signed by this gateway for an agent (`-q` prints only the token)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an ID token this gateway issued: it fails verification here from then on')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;tokens;help;issue' {
            break
        }
        'agenttrust;federation;tokens;help;revoke' {
            break
        }
        'agenttrust;federation;tokens;help;help' {
            break
        }
        'agenttrust;federation;session' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Open a federation session from an ID token (`-q` prints the session id)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;sessions' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Open a federation session from an ID token (`-q` prints the session id)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;session;init' {
            [CompletionResult]::new('--issuer', '--issuer', [CompletionResultType]::ParameterName, 'The issuer it must come from')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;sessions;init' {
            [CompletionResult]::new('--issuer', '--issuer', [CompletionResultType]::ParameterName, 'The issuer it must come from')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;federation;session;help' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Open a federation session from an ID token (`-q` prints the session id)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;session;help;init' {
            break
        }
        'agenttrust;federation;session;help;help' {
            break
        }
        'agenttrust;federation;sessions;help' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Open a federation session from an ID token (`-q` prints the session id)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;sessions;help;init' {
            break
        }
        'agenttrust;federation;sessions;help;help' {
            break
        }
        'agenttrust;federation;help' {
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'External OIDC issuers the org trusts: add (by discovery), list, get, update, delete')
            [CompletionResult]::new('subjects', 'subjects', [CompletionResultType]::ParameterValue, 'Which subject of a provider acts as which agent of the org: link, list, unlink')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify an ID token (a provider''s or this gateway''s) for this org')
            [CompletionResult]::new('tokens', 'tokens', [CompletionResultType]::ParameterValue, 'ID tokens signed by this gateway for its agents: issue, revoke')
            [CompletionResult]::new('session', 'session', [CompletionResultType]::ParameterValue, 'Open a session from an ID token, bounded by its provider''s trust level')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;federation;help;providers' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register an issuer: its discovery document is fetched and its `issuer` must match (`-q` prints the provider id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s providers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one provider')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a provider''s name, trust level, status, audience, subject claim or JWKS URL; `--status disabled` stops its tokens and its sessions at once')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Stop trusting a provider: its tokens are refused and its sessions end at once')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Trust a disabled provider again')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)')
            break
        }
        'agenttrust;federation;help;providers;add' {
            break
        }
        'agenttrust;federation;help;providers;list' {
            break
        }
        'agenttrust;federation;help;providers;get' {
            break
        }
        'agenttrust;federation;help;providers;update' {
            break
        }
        'agenttrust;federation;help;providers;disable' {
            break
        }
        'agenttrust;federation;help;providers;enable' {
            break
        }
        'agenttrust;federation;help;providers;remove' {
            break
        }
        'agenttrust;federation;help;subjects' {
            [CompletionResult]::new('link', 'link', [CompletionResultType]::ParameterValue, 'Let SUBJECT of the provider act as an agent of the org')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the provider''s linked subjects')
            [CompletionResult]::new('unlink', 'unlink', [CompletionResultType]::ParameterValue, 'Remove a link (asks first; --yes without a terminal)')
            break
        }
        'agenttrust;federation;help;subjects;link' {
            break
        }
        'agenttrust;federation;help;subjects;list' {
            break
        }
        'agenttrust;federation;help;subjects;unlink' {
            break
        }
        'agenttrust;federation;help;verify' {
            break
        }
        'agenttrust;federation;help;tokens' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue an ID token signed by this gateway for an agent (`-q` prints only the token)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an ID token this gateway issued: it fails verification here from then on')
            break
        }
        'agenttrust;federation;help;tokens;issue' {
            break
        }
        'agenttrust;federation;help;tokens;revoke' {
            break
        }
        'agenttrust;federation;help;session' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Open a federation session from an ID token (`-q` prints the session id)')
            break
        }
        'agenttrust;federation;help;session;init' {
            break
        }
        'agenttrust;federation;help;help' {
            break
        }
        'agenttrust;streaming' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook (`-q` prints the destination id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s destinations')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one destination (its token masked) and its delivery state')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a destination''s name, endpoint, token, batching, filter or state')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'A destination''s delivery attempts, newest first (--follow: print new ones as they come)')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Send one test event to a destination now (exit 1 when it does not arrive)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;streaming;create' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A name to tell destinations apart')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'splunk (alias splunk_hec), datadog, elastic or webhook')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'Where events are POSTed (https; http only to a loopback address unless the gateway allows it)')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'Where events are POSTed (https; http only to a loopback address unless the gateway allows it)')
            [CompletionResult]::new('--batch-size', '--batch-size', [CompletionResultType]::ParameterName, 'Events per batch, 1 to 1000 [default: 100]')
            [CompletionResult]::new('--flush-interval', '--flush-interval', [CompletionResultType]::ParameterName, 'Longest an event waits for a full batch: 30, 30s, 5m (1s to 1h) [default: 30s]')
            [CompletionResult]::new('--filter', '--filter', [CompletionResultType]::ParameterName, 'Only these event kinds (check.decided) or prefixes (agent.*): comma-separated or repeated [default: every event]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--auth-token-stdin', '--auth-token-stdin', [CompletionResultType]::ParameterName, 'Read the destination''s token (HEC token, Datadog API key, Elasticsearch API key, webhook signing secret) from stdin')
            [CompletionResult]::new('--skip-rejected-batches', '--skip-rejected-batches', [CompletionResultType]::ParameterName, 'Pass over a batch the destination rejects as malformed (400, 413, 422) instead of retrying it until fixed')
            [CompletionResult]::new('--inactive', '--inactive', [CompletionResultType]::ParameterName, 'Create it paused (nothing is sent until `update --active true`)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;streaming;list' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;streaming;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;streaming;update' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'name')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'endpoint')
            [CompletionResult]::new('--endpoint-url', '--endpoint-url', [CompletionResultType]::ParameterName, 'endpoint')
            [CompletionResult]::new('--active', '--active', [CompletionResultType]::ParameterName, 'true: stream; false: pause (the cursor waits)')
            [CompletionResult]::new('--batch-size', '--batch-size', [CompletionResultType]::ParameterName, 'batch-size')
            [CompletionResult]::new('--flush-interval', '--flush-interval', [CompletionResultType]::ParameterName, 'flush-interval')
            [CompletionResult]::new('--filter', '--filter', [CompletionResultType]::ParameterName, 'Replace the filter: kinds or prefixes, comma-separated or repeated')
            [CompletionResult]::new('--skip-rejected-batches', '--skip-rejected-batches', [CompletionResultType]::ParameterName, 'skip-rejected-batches')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--auth-token-stdin', '--auth-token-stdin', [CompletionResultType]::ParameterName, 'Read a new token from stdin')
            [CompletionResult]::new('--clear-filter', '--clear-filter', [CompletionResultType]::ParameterName, 'Send every event again (remove the filter)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;streaming;delete' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;streaming;remove' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;streaming;logs' {
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'How many records, 1 to 1000 [default: 50]')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'With --follow: time between polls [default: 2s]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Keep polling and print each new record once (oldest first); Ctrl-C stops (exit 0)')
            [CompletionResult]::new('--follow', '--follow', [CompletionResultType]::ParameterName, 'Keep polling and print each new record once (oldest first); Ctrl-C stops (exit 0)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;streaming;test' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;streaming;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook (`-q` prints the destination id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s destinations')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one destination (its token masked) and its delivery state')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a destination''s name, endpoint, token, batching, filter or state')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'A destination''s delivery attempts, newest first (--follow: print new ones as they come)')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Send one test event to a destination now (exit 1 when it does not arrive)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;streaming;help;create' {
            break
        }
        'agenttrust;streaming;help;list' {
            break
        }
        'agenttrust;streaming;help;get' {
            break
        }
        'agenttrust;streaming;help;update' {
            break
        }
        'agenttrust;streaming;help;delete' {
            break
        }
        'agenttrust;streaming;help;logs' {
            break
        }
        'agenttrust;streaming;help;test' {
            break
        }
        'agenttrust;streaming;help;help' {
            break
        }
        'agenttrust;mcp' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('servers', 'servers', [CompletionResultType]::ParameterValue, 'MCP servers the org''s agents reach through the gateway: add, list, get, remove')
            [CompletionResult]::new('tools', 'tools', [CompletionResultType]::ParameterValue, 'The tools an agent may call on a server (its tools/list, filtered by the org''s policy; a tool needing a human''s approval is listed)')
            [CompletionResult]::new('call', 'call', [CompletionResultType]::ParameterValue, 'Call a tool on a server through the gateway, checked by the Guardian first')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;mcp;servers' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a server (`-q` prints its id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s servers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one server')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a server (asks first; --yes without a terminal)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Remove a server (asks first; --yes without a terminal)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;mcp;servers;add' {
            [CompletionResult]::new('--capabilities', '--capabilities', [CompletionResultType]::ParameterName, 'What the server offers (comma-separated or repeated)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--auth-token-stdin', '--auth-token-stdin', [CompletionResultType]::ParameterName, 'Read a bearer token for the upstream from stdin; the gateway sends it when it forwards, and never shows it again')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;mcp;servers;list' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;mcp;servers;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;mcp;servers;remove' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;mcp;servers;delete' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;mcp;servers;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a server (`-q` prints its id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s servers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one server')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a server (asks first; --yes without a terminal)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;mcp;servers;help;add' {
            break
        }
        'agenttrust;mcp;servers;help;list' {
            break
        }
        'agenttrust;mcp;servers;help;get' {
            break
        }
        'agenttrust;mcp;servers;help;remove' {
            break
        }
        'agenttrust;mcp;servers;help;help' {
            break
        }
        'agenttrust;mcp;tools' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Session id [env: AGENTTRUST_SESSION_ID]')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;mcp;call' {
            [CompletionResult]::new('--args', '--args', [CompletionResultType]::ParameterName, 'The tool''s arguments, a JSON object')
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token''s agent]')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Session id [env: AGENTTRUST_SESSION_ID]')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and --agent may be omitted')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;mcp;help' {
            [CompletionResult]::new('servers', 'servers', [CompletionResultType]::ParameterValue, 'MCP servers the org''s agents reach through the gateway: add, list, get, remove')
            [CompletionResult]::new('tools', 'tools', [CompletionResultType]::ParameterValue, 'The tools an agent may call on a server (its tools/list, filtered by the org''s policy; a tool needing a human''s approval is listed)')
            [CompletionResult]::new('call', 'call', [CompletionResultType]::ParameterValue, 'Call a tool on a server through the gateway, checked by the Guardian first')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;mcp;help;servers' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a server (`-q` prints its id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s servers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one server')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a server (asks first; --yes without a terminal)')
            break
        }
        'agenttrust;mcp;help;servers;add' {
            break
        }
        'agenttrust;mcp;help;servers;list' {
            break
        }
        'agenttrust;mcp;help;servers;get' {
            break
        }
        'agenttrust;mcp;help;servers;remove' {
            break
        }
        'agenttrust;mcp;help;tools' {
            break
        }
        'agenttrust;mcp;help;call' {
            break
        }
        'agenttrust;mcp;help;help' {
            break
        }
        'agenttrust;cards' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Generate (or regenerate) an agent''s card from its record and the settings given here (kept for the next regeneration)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show an agent''s card (signed now by the gateway)')
            [CompletionResult]::new('publish', 'publish', [CompletionResultType]::ParameterValue, 'Publish an agent''s card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)')
            [CompletionResult]::new('unpublish', 'unpublish', [CompletionResultType]::ParameterValue, 'Take an agent''s card off the public route')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Fetch a card by URL (or an agent''s public card on this gateway), check its signature against the issuer''s JWK Set, print its trust extension')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;cards;generate' {
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'What the agent does ("" clears it)')
            [CompletionResult]::new('--skills-json', '--skills-json', [CompletionResultType]::ParameterName, 'The skills to list instead of the agent''s capabilities: a JSON array of {"id","name","description","tags":[…],"examples":[…]} ("[]" lists none)')
            [CompletionResult]::new('--documentation-url', '--documentation-url', [CompletionResultType]::ParameterName, 'Where the agent is documented ("" clears it)')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'The agent''s own A2A JSON-RPC endpoint: messages to it are forwarded there ("" clears it)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;cards;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;cards;publish' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;cards;unpublish' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;cards;verify' {
            [CompletionResult]::new('--jwks', '--jwks', [CompletionResultType]::ParameterName, 'The issuer''s JWK Set URL (default: see below)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;cards;help' {
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Generate (or regenerate) an agent''s card from its record and the settings given here (kept for the next regeneration)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show an agent''s card (signed now by the gateway)')
            [CompletionResult]::new('publish', 'publish', [CompletionResultType]::ParameterValue, 'Publish an agent''s card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)')
            [CompletionResult]::new('unpublish', 'unpublish', [CompletionResultType]::ParameterValue, 'Take an agent''s card off the public route')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Fetch a card by URL (or an agent''s public card on this gateway), check its signature against the issuer''s JWK Set, print its trust extension')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;cards;help;generate' {
            break
        }
        'agenttrust;cards;help;get' {
            break
        }
        'agenttrust;cards;help;publish' {
            break
        }
        'agenttrust;cards;help;unpublish' {
            break
        }
        'agenttrust;cards;help;verify' {
            break
        }
        'agenttrust;cards;help;help' {
            break
        }
        'agenttrust;a2a' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('send', 'send', [CompletionResultType]::ParameterValue, 'Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the target''s own A2A endpoint when its card names one, else it waits in the gateway')
            [CompletionResult]::new('tasks', 'tasks', [CompletionResultType]::ParameterValue, 'The tasks waiting in the gateway: list, get, complete, cancel')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;a2a;send' {
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'The sending agent (id or name) [default with an agent token: the token''s agent]')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'The receiving agent (id or name)')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;a2a;tasks' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks, newest first')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one task')
            [CompletionResult]::new('complete', 'complete', [CompletionResultType]::ParameterValue, 'Answer a task as its target: completed (default) or --failed, with a text reply')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel a task that has not ended')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;a2a;tasks;list' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Only tasks this agent sent or received (id or name)')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only tasks in this status')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'How many tasks at most (1-200)')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;a2a;tasks;get' {
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;a2a;tasks;complete' {
            [CompletionResult]::new('--text', '--text', [CompletionResultType]::ParameterName, 'The answer (also kept as the task''s artifact)')
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--failed', '--failed', [CompletionResultType]::ParameterName, 'The task failed (the text says why)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;a2a;tasks;cancel' {
            [CompletionResult]::new('--agent-token-file', '--agent-token-file', [CompletionResultType]::ParameterName, 'Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token no API key is needed and the token''s agent acts')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;a2a;tasks;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks, newest first')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one task')
            [CompletionResult]::new('complete', 'complete', [CompletionResultType]::ParameterValue, 'Answer a task as its target: completed (default) or --failed, with a text reply')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel a task that has not ended')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;a2a;tasks;help;list' {
            break
        }
        'agenttrust;a2a;tasks;help;get' {
            break
        }
        'agenttrust;a2a;tasks;help;complete' {
            break
        }
        'agenttrust;a2a;tasks;help;cancel' {
            break
        }
        'agenttrust;a2a;tasks;help;help' {
            break
        }
        'agenttrust;a2a;help' {
            [CompletionResult]::new('send', 'send', [CompletionResultType]::ParameterValue, 'Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the target''s own A2A endpoint when its card names one, else it waits in the gateway')
            [CompletionResult]::new('tasks', 'tasks', [CompletionResultType]::ParameterValue, 'The tasks waiting in the gateway: list, get, complete, cancel')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;a2a;help;send' {
            break
        }
        'agenttrust;a2a;help;tasks' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks, newest first')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one task')
            [CompletionResult]::new('complete', 'complete', [CompletionResultType]::ParameterValue, 'Answer a task as its target: completed (default) or --failed, with a text reply')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel a task that has not ended')
            break
        }
        'agenttrust;a2a;help;tasks;list' {
            break
        }
        'agenttrust;a2a;help;tasks;get' {
            break
        }
        'agenttrust;a2a;help;tasks;complete' {
            break
        }
        'agenttrust;a2a;help;tasks;cancel' {
            break
        }
        'agenttrust;a2a;help;help' {
            break
        }
        'agenttrust;keys' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a key; the secret is shown once (`-q` prints only the key)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List keys, oldest first (never the secrets, only their prefixes)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a key (asks first, warning when it is the key in use; --yes without a terminal). The org''s last active admin key cannot be revoked: create another admin key first')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;keys;create' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'admin manages the org; runtime may only check, report telemetry and handle tokens')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A name to tell keys apart')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;keys;list' {
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Items per page, 1-1000 (with --all, per request) [default: the gateway''s, 100]')
            [CompletionResult]::new('--cursor', '--cursor', [CompletionResultType]::ParameterName, 'Start at this cursor (the `next_cursor` of a previous page)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Follow `next_cursor` until the last page')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;keys;revoke' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;keys;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a key; the secret is shown once (`-q` prints only the key)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List keys, oldest first (never the secrets, only their prefixes)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a key (asks first, warning when it is the key in use; --yes without a terminal). The org''s last active admin key cannot be revoked: create another admin key first')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;keys;help;create' {
            break
        }
        'agenttrust;keys;help;list' {
            break
        }
        'agenttrust;keys;help;revoke' {
            break
        }
        'agenttrust;keys;help;help' {
            break
        }
        'agenttrust;orgs' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('security-settings', 'security-settings', [CompletionResultType]::ParameterValue, 'Proof of possession and sender-constrained tokens')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;orgs;security-settings' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show the org''s security settings')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change them (a setting left out keeps its value)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;orgs;security-settings;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;orgs;security-settings;set' {
            [CompletionResult]::new('--require-proof-of-possession', '--require-proof-of-possession', [CompletionResultType]::ParameterName, 'Issue WIMSE tokens only against a proof of possession of the agent''s key')
            [CompletionResult]::new('--require-sender-constrained-tokens', '--require-sender-constrained-tokens', [CompletionResultType]::ParameterName, 'Accept agent credentials only with a DPoP proof of the agent''s key')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;orgs;security-settings;help' {
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show the org''s security settings')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change them (a setting left out keeps its value)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;orgs;security-settings;help;get' {
            break
        }
        'agenttrust;orgs;security-settings;help;set' {
            break
        }
        'agenttrust;orgs;security-settings;help;help' {
            break
        }
        'agenttrust;orgs;help' {
            [CompletionResult]::new('security-settings', 'security-settings', [CompletionResultType]::ParameterValue, 'Proof of possession and sender-constrained tokens')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;orgs;help;security-settings' {
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show the org''s security settings')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change them (a setting left out keeps its value)')
            break
        }
        'agenttrust;orgs;help;security-settings;get' {
            break
        }
        'agenttrust;orgs;help;security-settings;set' {
            break
        }
        'agenttrust;orgs;help;help' {
            break
        }
        'agenttrust;audit' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List audit events in chain order, oldest first, filtered (`--all` follows every page)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one audit event, with its detail and hashes')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Print the latest events; with -f, follow new ones as they are appended (reconnecting)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify the org''s audit chain online, or an export file offline (exit 0 intact, 1 not)')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks')
            [CompletionResult]::new('checkpoints', 'checkpoints', [CompletionResultType]::ParameterValue, 'List the signed checkpoints of the chain''s head, or sign the head now')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;audit;list' {
            [CompletionResult]::new('--kind', '--kind', [CompletionResultType]::ParameterName, 'Only these kinds: exact (check.decided) or a prefix (federation.*); repeat or separate with commas')
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Only events concerning this agent (its subject, its agent_id, or its actor)')
            [CompletionResult]::new('--subject', '--subject', [CompletionResultType]::ParameterName, 'Only events about this subject: TYPE or TYPE:ID (agent:agt_…, policy)')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only events at or after this time: RFC 3339, or a duration ago (30m, 24h)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only events at or before this time: RFC 3339, or a duration ago')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Events per page (1-1000) [default: the gateway''s, 100]')
            [CompletionResult]::new('--cursor', '--cursor', [CompletionResultType]::ParameterName, 'Start at this cursor (the `next_cursor` of a previous page)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--reverse', '--reverse', [CompletionResultType]::ParameterName, 'Newest first')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Follow `next_cursor` until the last page')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;audit;get' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;audit;tail' {
            [CompletionResult]::new('--kind', '--kind', [CompletionResultType]::ParameterName, 'Only these kinds: exact (check.decided) or a prefix (federation.*); repeat or separate with commas')
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Only events concerning this agent (its subject, its agent_id, or its actor)')
            [CompletionResult]::new('--subject', '--subject', [CompletionResultType]::ParameterName, 'Only events about this subject: TYPE or TYPE:ID (agent:agt_…, policy)')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only events at or after this time: RFC 3339, or a duration ago (30m, 24h)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only events at or before this time: RFC 3339, or a duration ago')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'How many of the latest events to print first (0-1000)')
            [CompletionResult]::new('--lines', '--lines', [CompletionResultType]::ParameterName, 'How many of the latest events to print first (0-1000)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Keep following: print each new event as it is appended; Ctrl-C stops (exit 0)')
            [CompletionResult]::new('--follow', '--follow', [CompletionResultType]::ParameterName, 'Keep following: print each new event as it is appended; Ctrl-C stops (exit 0)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;audit;verify' {
            [CompletionResult]::new('--from-seq', '--from-seq', [CompletionResultType]::ParameterName, 'Start at this event (its link to the event before is checked against the stored hash)')
            [CompletionResult]::new('--to-seq', '--to-seq', [CompletionResultType]::ParameterName, 'Stop at this event')
            [CompletionResult]::new('--offline', '--offline', [CompletionResultType]::ParameterName, 'Verify this export file (`-` for stdin) without a gateway')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'With --offline: the gateway''s public keys, a JWK Set file (from `agenttrust audit keys`)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;audit;export' {
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Start at the first event at or after this time: RFC 3339, or a duration ago (24h)')
            [CompletionResult]::new('--from-seq', '--from-seq', [CompletionResultType]::ParameterName, 'Start at this event [default: 1, the whole chain]')
            [CompletionResult]::new('--output-file', '--output-file', [CompletionResultType]::ParameterName, 'Write to this file instead of stdout (replaced only once the export is complete)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;audit;checkpoints' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List signed checkpoints, oldest first')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Sign the chain''s head now')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;audit;checkpoints;list' {
            [CompletionResult]::new('--after-seq', '--after-seq', [CompletionResultType]::ParameterName, 'Checkpoints after this event')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Checkpoints per page (1-1000) [default: the gateway''s, 100]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Follow every page')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;audit;checkpoints;create' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;audit;checkpoints;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List signed checkpoints, oldest first')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Sign the chain''s head now')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;audit;checkpoints;help;list' {
            break
        }
        'agenttrust;audit;checkpoints;help;create' {
            break
        }
        'agenttrust;audit;checkpoints;help;help' {
            break
        }
        'agenttrust;audit;keys' {
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;audit;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List audit events in chain order, oldest first, filtered (`--all` follows every page)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one audit event, with its detail and hashes')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Print the latest events; with -f, follow new ones as they are appended (reconnecting)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify the org''s audit chain online, or an export file offline (exit 0 intact, 1 not)')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks')
            [CompletionResult]::new('checkpoints', 'checkpoints', [CompletionResultType]::ParameterValue, 'List the signed checkpoints of the chain''s head, or sign the head now')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;audit;help;list' {
            break
        }
        'agenttrust;audit;help;get' {
            break
        }
        'agenttrust;audit;help;tail' {
            break
        }
        'agenttrust;audit;help;verify' {
            break
        }
        'agenttrust;audit;help;export' {
            break
        }
        'agenttrust;audit;help;checkpoints' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List signed checkpoints, oldest first')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Sign the chain''s head now')
            break
        }
        'agenttrust;audit;help;checkpoints;list' {
            break
        }
        'agenttrust;audit;help;checkpoints;create' {
            break
        }
        'agenttrust;audit;help;keys' {
            break
        }
        'agenttrust;audit;help;help' {
            break
        }
        'agenttrust;api' {
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Request body: JSON text, @FILE to read a file, or - to read stdin')
            [CompletionResult]::new('--data', '--data', [CompletionResultType]::ParameterName, 'Request body: JSON text, @FILE to read a file, or - to read stdin')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header (repeatable): ''Name: value''')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header (repeatable): ''Name: value''')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'Print the response status and headers on stderr')
            [CompletionResult]::new('--include', '--include', [CompletionResultType]::ParameterName, 'Print the response status and headers on stderr')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;bench' {
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'Concurrent workers, each with its own connection (1-4096)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'How long each scenario is measured: 10s, 1m')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Open loop: requests a second in all, sent at fixed times [default: closed loop]')
            [CompletionResult]::new('--warmup', '--warmup', [CompletionResultType]::ParameterName, 'Load before each scenario''s measurement, not recorded: 1s, 0s for none')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('seed', 'seed', [CompletionResultType]::ParameterValue, 'Fill the gateway with agents and checks through the API, to measure it at a size (like pgbench -i)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;bench;seed' {
            [CompletionResult]::new('--agents', '--agents', [CompletionResultType]::ParameterName, 'Agents to register')
            [CompletionResult]::new('--checks', '--checks', [CompletionResultType]::ParameterName, 'Checks to make, spread over the new agents')
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'Concurrent workers, each with its own connection (1-4096)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;bench;help' {
            [CompletionResult]::new('seed', 'seed', [CompletionResultType]::ParameterValue, 'Fill the gateway with agents and checks through the API, to measure it at a size (like pgbench -i)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;bench;help;seed' {
            break
        }
        'agenttrust;bench;help;help' {
            break
        }
        'agenttrust;completions' {
            [CompletionResult]::new('--write-dir', '--write-dir', [CompletionResultType]::ParameterName, 'Write every shell''s file into this dir (used to refresh completions/)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;man' {
            [CompletionResult]::new('--write-dir', '--write-dir', [CompletionResultType]::ParameterName, 'Write every page into this dir instead (used to refresh man/)')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;server' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Where to listen')
            [CompletionResult]::new('--max-token-ttl', '--max-token-ttl', [CompletionResultType]::ParameterName, 'The longest lifetime a token may be issued for (`3600`, `1h`)')
            [CompletionResult]::new('--sqlite-synchronous', '--sqlite-synchronous', [CompletionResultType]::ParameterName, 'When SQLite syncs a commit to disk: `full` (every commit survives an OS crash or power loss) or `normal` (faster; the last commits may be lost when the machine goes down)')
            [CompletionResult]::new('--max-policy-rules', '--max-policy-rules', [CompletionResultType]::ParameterName, 'Most rules an org''s policy may have')
            [CompletionResult]::new('--max-policy-compiled-bytes', '--max-policy-compiled-bytes', [CompletionResultType]::ParameterName, 'Most memory, in bytes, an org''s compiled policy may take (its regexes above all)')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Most connections served at once; past it a connection gets a 503')
            [CompletionResult]::new('--header-read-timeout', '--header-read-timeout', [CompletionResultType]::ParameterName, 'How long a client may take to send a request''s headers (also ends idle connections)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long one request, its body included, may take before it is answered with a 503')
            [CompletionResult]::new('--max-delegation-ttl', '--max-delegation-ttl', [CompletionResultType]::ParameterName, 'The longest lifetime a delegation may be created for; a longer `ttl_seconds` is refused')
            [CompletionResult]::new('--audit-checkpoint-interval', '--audit-checkpoint-interval', [CompletionResultType]::ParameterName, 'How often the head of every audit chain that grew is signed (a checkpoint an export is verified against offline); 0 signs only on demand (`audit export` asks for one)')
            [CompletionResult]::new('--public-url', '--public-url', [CompletionResultType]::ParameterName, 'The URL clients reach this gateway at (behind a load balancer: its URL); the issuer name of the ID tokens it signs [default: http://<listen address>]')
            [CompletionResult]::new('--mcp-upstream-timeout', '--mcp-upstream-timeout', [CompletionResultType]::ParameterName, 'How long a call to an MCP upstream may take, answer included (below --request-timeout)')
            [CompletionResult]::new('--telemetry-rate-limit', '--telemetry-rate-limit', [CompletionResultType]::ParameterName, 'The most telemetry events per second one agent may report (a burst of ten seconds'' worth, at least one full report, passes); more is refused with 429 and Retry-After. Counted per replica [default: no limit]')
            [CompletionResult]::new('--a2a-rate-limit', '--a2a-rate-limit', [CompletionResultType]::ParameterName, 'The most A2A messages per second one agent may send (a burst of ten seconds'' worth passes); more is refused with 429 and Retry-After, before any check or task is stored. Counted per replica [default: no limit]')
            [CompletionResult]::new('--mcp-session-idle-timeout', '--mcp-session-idle-timeout', [CompletionResultType]::ParameterName, 'How long an MCP session held by the proxy may go unused before it ends')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--dev', '--dev', [CompletionResultType]::ParameterName, 'Create (once) an org and an admin key and save them as profile `local`')
            [CompletionResult]::new('--federation-allow-http', '--federation-allow-http', [CompletionResultType]::ParameterName, 'Fetch federation providers'' documents over plain http from any host (by default only https, or http to a loopback address)')
            [CompletionResult]::new('--streaming-allow-http', '--streaming-allow-http', [CompletionResultType]::ParameterName, 'Stream the audit log to SIEM destinations over plain http on any host (by default only https, or http to a loopback address)')
            [CompletionResult]::new('--mcp-allow-http', '--mcp-allow-http', [CompletionResultType]::ParameterName, 'Reach MCP upstreams over plain http on any host (by default only https, or http to a loopback address)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('org', 'org', [CompletionResultType]::ParameterValue, 'Manage orgs in the database')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Mint org API keys in the database')
            [CompletionResult]::new('signing-key', 'signing-key', [CompletionResultType]::ParameterValue, 'The gateway''s signing keys (ID tokens): list, rotate, make a key-encryption key')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;server;org' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create an org; prints its id')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q` for the ids)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;server;org;create' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;server;org;list' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;server;org;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create an org; prints its id')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q` for the ids)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;server;org;help;create' {
            break
        }
        'agenttrust;server;org;help;list' {
            break
        }
        'agenttrust;server;org;help;help' {
            break
        }
        'agenttrust;server;key' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Mint an API key for an org; prints the key once')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;server;key;create' {
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'The org, by id or name')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'admin (manages the org) or runtime (checks, telemetry, tokens)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A label to tell keys apart')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;server;key;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Mint an API key for an org; prints the key once')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;server;key;help;create' {
            break
        }
        'agenttrust;server;key;help;help' {
            break
        }
        'agenttrust;server;signing-key' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the signing keys: which one signs, which are still published')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Make a new signing key; the old one stays published for --overlap, so the tokens it signed keep verifying until they expire')
            [CompletionResult]::new('secret', 'secret', [CompletionResultType]::ParameterValue, 'Print a new random key-encryption key, for --signing-key-secret-file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;server;signing-key;list' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;server;signing-key;rotate' {
            [CompletionResult]::new('--overlap', '--overlap', [CompletionResultType]::ParameterName, 'How long the old key stays published: at least the server''s --max-token-ttl')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;server;signing-key;secret' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, '`sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: a SQLite file in the data dir]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory of the default SQLite file [default: the platform''s data dir]')
            [CompletionResult]::new('--signing-key-secret-file', '--signing-key-secret-file', [CompletionResultType]::ParameterName, 'A file holding the key-encryption key that seals the private halves of the gateway''s signing keys (32 bytes in base64; `agenttrust server signing-key secret` makes one). Every replica needs the same one [default with SQLite: DATABASE.signing-secret, made on first start; with PostgreSQL: none, the keys are stored unsealed]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile to use [env: AGENTTRUST_PROFILE] [default: the configured default, else `default`]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Gateway base URL [env: AGENTTRUST_URL, then AGENTTRUST_BASE_URL] [default: http://localhost:8080]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format [env: AGENTTRUST_OUTPUT] [default: table]')
            [CompletionResult]::new('--jq', '--jq', [CompletionResultType]::ParameterName, 'Filter the JSON output through a jq expression; implies `-o json` (strings print raw)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Request timeout: 300, 300s, 5m, 1h [env: AGENTTRUST_TIMEOUT] [default: 30s]')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate in addition to the system roots')
            [CompletionResult]::new('--config-dir', '--config-dir', [CompletionResultType]::ParameterName, 'Config dir [env: AGENTTRUST_CONFIG_DIR] [default: the platform''s, e.g. ~/.config/agenttrust]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'Colour: auto (on a terminal; NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE respected), always, never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Skip TLS certificate verification (unsafe; warns)')
            [CompletionResult]::new('--no-input', '--no-input', [CompletionResultType]::ParameterName, 'Agent/CI mode: no prompts (--yes needed), JSON errors on stderr [env: AGENTTRUST_NO_INPUT]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the primary value (an id, a token, a key)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v debug, -vv everything)')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column whole (ids not shortened, not fitted to the terminal''s width)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'agenttrust;server;signing-key;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the signing keys: which one signs, which are still published')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Make a new signing key; the old one stays published for --overlap, so the tokens it signed keep verifying until they expire')
            [CompletionResult]::new('secret', 'secret', [CompletionResultType]::ParameterValue, 'Print a new random key-encryption key, for --signing-key-secret-file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;server;signing-key;help;list' {
            break
        }
        'agenttrust;server;signing-key;help;rotate' {
            break
        }
        'agenttrust;server;signing-key;help;secret' {
            break
        }
        'agenttrust;server;signing-key;help;help' {
            break
        }
        'agenttrust;server;help' {
            [CompletionResult]::new('org', 'org', [CompletionResultType]::ParameterValue, 'Manage orgs in the database')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Mint org API keys in the database')
            [CompletionResult]::new('signing-key', 'signing-key', [CompletionResultType]::ParameterValue, 'The gateway''s signing keys (ID tokens): list, rotate, make a key-encryption key')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;server;help;org' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create an org; prints its id')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q` for the ids)')
            break
        }
        'agenttrust;server;help;org;create' {
            break
        }
        'agenttrust;server;help;org;list' {
            break
        }
        'agenttrust;server;help;key' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Mint an API key for an org; prints the key once')
            break
        }
        'agenttrust;server;help;key;create' {
            break
        }
        'agenttrust;server;help;signing-key' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the signing keys: which one signs, which are still published')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Make a new signing key; the old one stays published for --overlap, so the tokens it signed keep verifying until they expire')
            [CompletionResult]::new('secret', 'secret', [CompletionResultType]::ParameterValue, 'Print a new random key-encryption key, for --signing-key-secret-file')
            break
        }
        'agenttrust;server;help;signing-key;list' {
            break
        }
        'agenttrust;server;help;signing-key;rotate' {
            break
        }
        'agenttrust;server;help;signing-key;secret' {
            break
        }
        'agenttrust;server;help;help' {
            break
        }
        'agenttrust;help' {
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Validate an API key against the gateway and save it in a profile')
            [CompletionResult]::new('profile', 'profile', [CompletionResultType]::ParameterValue, 'Manage profiles (list, show, use, delete, import)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show the profile in use, the gateway''s health and whether the API key works')
            [CompletionResult]::new('health', 'health', [CompletionResultType]::ParameterValue, 'Check the gateway''s health')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Print this CLI''s version and the gateway''s (when it answers; never fails)')
            [CompletionResult]::new('agents', 'agents', [CompletionResultType]::ParameterValue, 'Register, list, inspect and revoke agents')
            [CompletionResult]::new('tokens', 'tokens', [CompletionResultType]::ParameterValue, 'Issue, introspect and revoke agent tokens')
            [CompletionResult]::new('actions', 'actions', [CompletionResultType]::ParameterValue, 'Check an action against policy (exit 0 allowed, 77 denied, 75 elevation required)')
            [CompletionResult]::new('telemetry', 'telemetry', [CompletionResultType]::ParameterValue, 'Report and list telemetry events')
            [CompletionResult]::new('sessions', 'sessions', [CompletionResultType]::ParameterValue, 'Open, inspect, list, re-mode and unlock agent sessions')
            [CompletionResult]::new('approvals', 'approvals', [CompletionResultType]::ParameterValue, 'List, approve, deny and wait for approvals (elevation)')
            [CompletionResult]::new('guard', 'guard', [CompletionResultType]::ParameterValue, 'The runtime seatbelt for shell-scripted agents: check, run, report (exit codes are the API)')
            [CompletionResult]::new('policies', 'policies', [CompletionResultType]::ParameterValue, 'Get, set, validate (offline) and test the org''s policy')
            [CompletionResult]::new('delegations', 'delegations', [CompletionResultType]::ParameterValue, 'Delegate capabilities between agents: create, list, get, revoke, open a session, tree')
            [CompletionResult]::new('federation', 'federation', [CompletionResultType]::ParameterValue, 'Federation: trust external OIDC issuers (providers, subject links), verify and issue ID tokens, open sessions from them')
            [CompletionResult]::new('streaming', 'streaming', [CompletionResultType]::ParameterValue, 'Stream the audit log to SIEMs (Splunk HEC, Datadog, Elasticsearch, signed webhooks): destinations, delivery logs, test deliveries')
            [CompletionResult]::new('mcp', 'mcp', [CompletionResultType]::ParameterValue, 'MCP: register MCP servers, list the tools an agent may call there, call one through the gateway (checked by the Guardian)')
            [CompletionResult]::new('cards', 'cards', [CompletionResultType]::ParameterValue, 'Agent cards (A2A): generate, get, publish and unpublish an agent''s signed card; verify any card against its issuer''s keys')
            [CompletionResult]::new('a2a', 'a2a', [CompletionResultType]::ParameterValue, 'Agent-to-agent messages through the gateway (checked by the Guardian): send, and the tasks waiting for their target')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'Manage org API keys')
            [CompletionResult]::new('orgs', 'orgs', [CompletionResultType]::ParameterValue, 'The org''s security settings: proof of possession, sender-constrained tokens')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Read the org''s audit log and verify its hash chain')
            [CompletionResult]::new('api', 'api', [CompletionResultType]::ParameterValue, 'Send a raw request to the gateway with the profile''s URL and key (like `gh api`)')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Measure the gateway under load: checks, introspections, token issues, telemetry, each beside /health (like pgbench)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print a man page (`agenttrust man agents list | man -l -`)')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run the embedded AgentTrust-compatible gateway')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agenttrust;help;login' {
            break
        }
        'agenttrust;help;profile' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List profiles (`*` marks the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a profile''s settings, secrets masked [default: the profile in use]')
            [CompletionResult]::new('use', 'use', [CompletionResultType]::ParameterValue, 'Make a profile the default')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure, ca_cert (the API key is set with `agenttrust login`, which checks it)')
            [CompletionResult]::new('rename', 'rename', [CompletionResultType]::ParameterValue, 'Rename a profile (its key and its place as the default go with it)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a profile and its credentials (asks first; --yes without a terminal)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import the SDK''s JSON config file (base_url, auth_url, api_key[, audit_url, timeout]) into the profile named by --profile (default `default`)')
            break
        }
        'agenttrust;help;profile;list' {
            break
        }
        'agenttrust;help;profile;show' {
            break
        }
        'agenttrust;help;profile;use' {
            break
        }
        'agenttrust;help;profile;set' {
            break
        }
        'agenttrust;help;profile;rename' {
            break
        }
        'agenttrust;help;profile;delete' {
            break
        }
        'agenttrust;help;profile;import' {
            break
        }
        'agenttrust;help;status' {
            break
        }
        'agenttrust;help;health' {
            break
        }
        'agenttrust;help;version' {
            break
        }
        'agenttrust;help;agents' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Register an agent')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s agents, oldest first (`--all` follows every page)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one agent')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an agent and every live token of it (asks first; --yes without a terminal)')
            [CompletionResult]::new('mode', 'mode', [CompletionResultType]::ParameterValue, 'Set the agent''s own mode, binding it in every session: standard, read_only or locked')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Unlock an agent locked by an admin or by the agent-level lockout')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'The agent''s Ed25519 key (proof of possession, DPoP)')
            break
        }
        'agenttrust;help;agents;create' {
            break
        }
        'agenttrust;help;agents;list' {
            break
        }
        'agenttrust;help;agents;get' {
            break
        }
        'agenttrust;help;agents;revoke' {
            break
        }
        'agenttrust;help;agents;mode' {
            break
        }
        'agenttrust;help;agents;unlock' {
            break
        }
        'agenttrust;help;agents;keys' {
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Make a new key pair here and register its public half; the previous key keeps working for the grace period')
            break
        }
        'agenttrust;help;agents;keys;rotate' {
            break
        }
        'agenttrust;help;tokens' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a token for an agent (`-q` prints only the token)')
            [CompletionResult]::new('introspect', 'introspect', [CompletionResultType]::ParameterValue, 'Ask the gateway whether a token is active')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (active ones unless --include-inactive; never the secrets, which the gateway does not keep)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)')
            break
        }
        'agenttrust;help;tokens;issue' {
            break
        }
        'agenttrust;help;tokens;introspect' {
            break
        }
        'agenttrust;help;tokens;list' {
            break
        }
        'agenttrust;help;tokens;revoke' {
            break
        }
        'agenttrust;help;actions' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check a tool call against policy')
            break
        }
        'agenttrust;help;actions;check' {
            break
        }
        'agenttrust;help;telemetry' {
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'Report one event (e.g. tool_end after a tool ran)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List stored events, oldest first (`--all` follows every page)')
            break
        }
        'agenttrust;help;telemetry;report' {
            break
        }
        'agenttrust;help;telemetry;list' {
            break
        }
        'agenttrust;help;sessions' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Open an MCP session of an agent with a server (`-q` prints the session id)')
            [CompletionResult]::new('init-api', 'init-api', [CompletionResultType]::ParameterValue, 'Open a session from an agent token: its agent and scope ceiling come from the token')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one session: mode, scope ceiling, call counters')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s sessions, oldest first (`--all` follows every page; --watch)')
            [CompletionResult]::new('set-mode', 'set-mode', [CompletionResultType]::ParameterValue, 'Set a session''s mode: standard, read_only, elevated or locked')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Unlock a locked session (back to standard)')
            break
        }
        'agenttrust;help;sessions;init' {
            break
        }
        'agenttrust;help;sessions;init-api' {
            break
        }
        'agenttrust;help;sessions;get' {
            break
        }
        'agenttrust;help;sessions;list' {
            break
        }
        'agenttrust;help;sessions;set-mode' {
            break
        }
        'agenttrust;help;sessions;unlock' {
            break
        }
        'agenttrust;help;approvals' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List approvals, newest first (pending ones unless --status says otherwise; --watch)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one approval')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a pending approval: the same action in the same session is then allowed')
            [CompletionResult]::new('deny', 'deny', [CompletionResultType]::ParameterValue, 'Deny a pending approval: the same action in the same session is then denied')
            [CompletionResult]::new('wait', 'wait', [CompletionResultType]::ParameterValue, 'Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)')
            break
        }
        'agenttrust;help;approvals;list' {
            break
        }
        'agenttrust;help;approvals;get' {
            break
        }
        'agenttrust;help;approvals;approve' {
            break
        }
        'agenttrust;help;approvals;deny' {
            break
        }
        'agenttrust;help;approvals;wait' {
            break
        }
        'agenttrust;help;guard' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check a tool call before making it (silent on allow; the exit status is the answer)')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Check a tool call and, when allowed, run the command and report what happened')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'Report what a tool call did (success or failure, duration)')
            [CompletionResult]::new('flush', 'flush', [CompletionResultType]::ParameterValue, 'Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)')
            [CompletionResult]::new('session', 'session', [CompletionResultType]::ParameterValue, 'Start or end a shell session: `eval "$(agenttrust guard session start)"`')
            break
        }
        'agenttrust;help;guard;check' {
            break
        }
        'agenttrust;help;guard;run' {
            break
        }
        'agenttrust;help;guard;report' {
            break
        }
        'agenttrust;help;guard;flush' {
            break
        }
        'agenttrust;help;guard;session' {
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`; nothing is printed when the gateway cannot open one')
            [CompletionResult]::new('end', 'end', [CompletionResultType]::ParameterValue, 'Deliver the session''s telemetry and print `unset AGENTTRUST_SESSION_ID`')
            break
        }
        'agenttrust;help;guard;session;start' {
            break
        }
        'agenttrust;help;guard;session;end' {
            break
        }
        'agenttrust;help;policies' {
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print the stored policy document (JSON, whatever -o says)')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Replace the policy with a JSON file: validates it, shows what changes, confirms')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Evaluate a hypothetical check against the stored policy (or --file); records nothing')
            break
        }
        'agenttrust;help;policies;get' {
            break
        }
        'agenttrust;help;policies;set' {
            break
        }
        'agenttrust;help;policies;validate' {
            break
        }
        'agenttrust;help;policies;test' {
            break
        }
        'agenttrust;help;delegations' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Delegate capabilities from one agent to another (`-q` prints the delegation id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s delegations')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one delegation: status, scope, restrictions, chain')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)')
            [CompletionResult]::new('session', 'session', [CompletionResultType]::ParameterValue, 'Open a session of the delegate bounded by the delegation (`-q` prints the session id)')
            [CompletionResult]::new('tree', 'tree', [CompletionResultType]::ParameterValue, 'Show delegations as an indented tree: every chain of the org, or the one containing ID')
            break
        }
        'agenttrust;help;delegations;create' {
            break
        }
        'agenttrust;help;delegations;list' {
            break
        }
        'agenttrust;help;delegations;get' {
            break
        }
        'agenttrust;help;delegations;revoke' {
            break
        }
        'agenttrust;help;delegations;session' {
            break
        }
        'agenttrust;help;delegations;tree' {
            break
        }
        'agenttrust;help;federation' {
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'External OIDC issuers the org trusts: add (by discovery), list, get, update, delete')
            [CompletionResult]::new('subjects', 'subjects', [CompletionResultType]::ParameterValue, 'Which subject of a provider acts as which agent of the org: link, list, unlink')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify an ID token (a provider''s or this gateway''s) for this org')
            [CompletionResult]::new('tokens', 'tokens', [CompletionResultType]::ParameterValue, 'ID tokens signed by this gateway for its agents: issue, revoke')
            [CompletionResult]::new('session', 'session', [CompletionResultType]::ParameterValue, 'Open a session from an ID token, bounded by its provider''s trust level')
            break
        }
        'agenttrust;help;federation;providers' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register an issuer: its discovery document is fetched and its `issuer` must match (`-q` prints the provider id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s providers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one provider')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a provider''s name, trust level, status, audience, subject claim or JWKS URL; `--status disabled` stops its tokens and its sessions at once')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Stop trusting a provider: its tokens are refused and its sessions end at once')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Trust a disabled provider again')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a provider and its subject links; its sessions end (asks first; --yes without a terminal)')
            break
        }
        'agenttrust;help;federation;providers;add' {
            break
        }
        'agenttrust;help;federation;providers;list' {
            break
        }
        'agenttrust;help;federation;providers;get' {
            break
        }
        'agenttrust;help;federation;providers;update' {
            break
        }
        'agenttrust;help;federation;providers;disable' {
            break
        }
        'agenttrust;help;federation;providers;enable' {
            break
        }
        'agenttrust;help;federation;providers;remove' {
            break
        }
        'agenttrust;help;federation;subjects' {
            [CompletionResult]::new('link', 'link', [CompletionResultType]::ParameterValue, 'Let SUBJECT of the provider act as an agent of the org')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the provider''s linked subjects')
            [CompletionResult]::new('unlink', 'unlink', [CompletionResultType]::ParameterValue, 'Remove a link (asks first; --yes without a terminal)')
            break
        }
        'agenttrust;help;federation;subjects;link' {
            break
        }
        'agenttrust;help;federation;subjects;list' {
            break
        }
        'agenttrust;help;federation;subjects;unlink' {
            break
        }
        'agenttrust;help;federation;verify' {
            break
        }
        'agenttrust;help;federation;tokens' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue an ID token signed by this gateway for an agent (`-q` prints only the token)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an ID token this gateway issued: it fails verification here from then on')
            break
        }
        'agenttrust;help;federation;tokens;issue' {
            break
        }
        'agenttrust;help;federation;tokens;revoke' {
            break
        }
        'agenttrust;help;federation;session' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Open a federation session from an ID token (`-q` prints the session id)')
            break
        }
        'agenttrust;help;federation;session;init' {
            break
        }
        'agenttrust;help;streaming' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook (`-q` prints the destination id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s destinations')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one destination (its token masked) and its delivery state')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a destination''s name, endpoint, token, batching, filter or state')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Stop streaming to a destination and forget its delivery log (asks first; --yes without a terminal)')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'A destination''s delivery attempts, newest first (--follow: print new ones as they come)')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Send one test event to a destination now (exit 1 when it does not arrive)')
            break
        }
        'agenttrust;help;streaming;create' {
            break
        }
        'agenttrust;help;streaming;list' {
            break
        }
        'agenttrust;help;streaming;get' {
            break
        }
        'agenttrust;help;streaming;update' {
            break
        }
        'agenttrust;help;streaming;delete' {
            break
        }
        'agenttrust;help;streaming;logs' {
            break
        }
        'agenttrust;help;streaming;test' {
            break
        }
        'agenttrust;help;mcp' {
            [CompletionResult]::new('servers', 'servers', [CompletionResultType]::ParameterValue, 'MCP servers the org''s agents reach through the gateway: add, list, get, remove')
            [CompletionResult]::new('tools', 'tools', [CompletionResultType]::ParameterValue, 'The tools an agent may call on a server (its tools/list, filtered by the org''s policy; a tool needing a human''s approval is listed)')
            [CompletionResult]::new('call', 'call', [CompletionResultType]::ParameterValue, 'Call a tool on a server through the gateway, checked by the Guardian first')
            break
        }
        'agenttrust;help;mcp;servers' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a server (`-q` prints its id)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the org''s servers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one server')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a server (asks first; --yes without a terminal)')
            break
        }
        'agenttrust;help;mcp;servers;add' {
            break
        }
        'agenttrust;help;mcp;servers;list' {
            break
        }
        'agenttrust;help;mcp;servers;get' {
            break
        }
        'agenttrust;help;mcp;servers;remove' {
            break
        }
        'agenttrust;help;mcp;tools' {
            break
        }
        'agenttrust;help;mcp;call' {
            break
        }
        'agenttrust;help;cards' {
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Generate (or regenerate) an agent''s card from its record and the settings given here (kept for the next regeneration)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show an agent''s card (signed now by the gateway)')
            [CompletionResult]::new('publish', 'publish', [CompletionResultType]::ParameterValue, 'Publish an agent''s card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)')
            [CompletionResult]::new('unpublish', 'unpublish', [CompletionResultType]::ParameterValue, 'Take an agent''s card off the public route')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Fetch a card by URL (or an agent''s public card on this gateway), check its signature against the issuer''s JWK Set, print its trust extension')
            break
        }
        'agenttrust;help;cards;generate' {
            break
        }
        'agenttrust;help;cards;get' {
            break
        }
        'agenttrust;help;cards;publish' {
            break
        }
        'agenttrust;help;cards;unpublish' {
            break
        }
        'agenttrust;help;cards;verify' {
            break
        }
        'agenttrust;help;a2a' {
            [CompletionResult]::new('send', 'send', [CompletionResultType]::ParameterValue, 'Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the target''s own A2A endpoint when its card names one, else it waits in the gateway')
            [CompletionResult]::new('tasks', 'tasks', [CompletionResultType]::ParameterValue, 'The tasks waiting in the gateway: list, get, complete, cancel')
            break
        }
        'agenttrust;help;a2a;send' {
            break
        }
        'agenttrust;help;a2a;tasks' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks, newest first')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one task')
            [CompletionResult]::new('complete', 'complete', [CompletionResultType]::ParameterValue, 'Answer a task as its target: completed (default) or --failed, with a text reply')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel a task that has not ended')
            break
        }
        'agenttrust;help;a2a;tasks;list' {
            break
        }
        'agenttrust;help;a2a;tasks;get' {
            break
        }
        'agenttrust;help;a2a;tasks;complete' {
            break
        }
        'agenttrust;help;a2a;tasks;cancel' {
            break
        }
        'agenttrust;help;keys' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a key; the secret is shown once (`-q` prints only the key)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List keys, oldest first (never the secrets, only their prefixes)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a key (asks first, warning when it is the key in use; --yes without a terminal). The org''s last active admin key cannot be revoked: create another admin key first')
            break
        }
        'agenttrust;help;keys;create' {
            break
        }
        'agenttrust;help;keys;list' {
            break
        }
        'agenttrust;help;keys;revoke' {
            break
        }
        'agenttrust;help;orgs' {
            [CompletionResult]::new('security-settings', 'security-settings', [CompletionResultType]::ParameterValue, 'Proof of possession and sender-constrained tokens')
            break
        }
        'agenttrust;help;orgs;security-settings' {
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show the org''s security settings')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Change them (a setting left out keeps its value)')
            break
        }
        'agenttrust;help;orgs;security-settings;get' {
            break
        }
        'agenttrust;help;orgs;security-settings;set' {
            break
        }
        'agenttrust;help;audit' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List audit events in chain order, oldest first, filtered (`--all` follows every page)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one audit event, with its detail and hashes')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Print the latest events; with -f, follow new ones as they are appended (reconnecting)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify the org''s audit chain online, or an export file offline (exit 0 intact, 1 not)')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks')
            [CompletionResult]::new('checkpoints', 'checkpoints', [CompletionResultType]::ParameterValue, 'List the signed checkpoints of the chain''s head, or sign the head now')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)')
            break
        }
        'agenttrust;help;audit;list' {
            break
        }
        'agenttrust;help;audit;get' {
            break
        }
        'agenttrust;help;audit;tail' {
            break
        }
        'agenttrust;help;audit;verify' {
            break
        }
        'agenttrust;help;audit;export' {
            break
        }
        'agenttrust;help;audit;checkpoints' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List signed checkpoints, oldest first')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Sign the chain''s head now')
            break
        }
        'agenttrust;help;audit;checkpoints;list' {
            break
        }
        'agenttrust;help;audit;checkpoints;create' {
            break
        }
        'agenttrust;help;audit;keys' {
            break
        }
        'agenttrust;help;api' {
            break
        }
        'agenttrust;help;bench' {
            [CompletionResult]::new('seed', 'seed', [CompletionResultType]::ParameterValue, 'Fill the gateway with agents and checks through the API, to measure it at a size (like pgbench -i)')
            break
        }
        'agenttrust;help;bench;seed' {
            break
        }
        'agenttrust;help;completions' {
            break
        }
        'agenttrust;help;man' {
            break
        }
        'agenttrust;help;server' {
            [CompletionResult]::new('org', 'org', [CompletionResultType]::ParameterValue, 'Manage orgs in the database')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Mint org API keys in the database')
            [CompletionResult]::new('signing-key', 'signing-key', [CompletionResultType]::ParameterValue, 'The gateway''s signing keys (ID tokens): list, rotate, make a key-encryption key')
            break
        }
        'agenttrust;help;server;org' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create an org; prints its id')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the orgs in the database, with their active admin and runtime keys (`-o json`, `-q` for the ids)')
            break
        }
        'agenttrust;help;server;org;create' {
            break
        }
        'agenttrust;help;server;org;list' {
            break
        }
        'agenttrust;help;server;key' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Mint an API key for an org; prints the key once')
            break
        }
        'agenttrust;help;server;key;create' {
            break
        }
        'agenttrust;help;server;signing-key' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the signing keys: which one signs, which are still published')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Make a new signing key; the old one stays published for --overlap, so the tokens it signed keep verifying until they expire')
            [CompletionResult]::new('secret', 'secret', [CompletionResultType]::ParameterValue, 'Print a new random key-encryption key, for --signing-key-secret-file')
            break
        }
        'agenttrust;help;server;signing-key;list' {
            break
        }
        'agenttrust;help;server;signing-key;rotate' {
            break
        }
        'agenttrust;help;server;signing-key;secret' {
            break
        }
        'agenttrust;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
