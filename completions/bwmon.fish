# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_bwmon_global_optspecs
    string join \n c/config= dev= state= v/verbose q/quiet now= h/help V/version
end

function __fish_bwmon_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_bwmon_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_bwmon_using_subcommand
    set -l cmd (__fish_bwmon_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c bwmon -n "__fish_bwmon_needs_command" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_needs_command" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_needs_command" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_needs_command" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_needs_command" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_needs_command" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_needs_command" -s h -l help -d 'Print help'
complete -c bwmon -n "__fish_bwmon_needs_command" -s V -l version -d 'Print version'
complete -c bwmon -n "__fish_bwmon_needs_command" -f -a "init" -d 'Create the HTB hierarchy on the device, or change its cap'
complete -c bwmon -n "__fish_bwmon_needs_command" -f -a "sync" -d 'Run the enforcement cycle once: new and dead slices, usage, caps, mail'
complete -c bwmon -n "__fish_bwmon_needs_command" -f -a "status" -d 'Show where every slice stands: usage, limits, caps, period end'
complete -c bwmon -n "__fish_bwmon_needs_command" -f -a "reset" -d 'Start a new period for one slice now: caps lifted, usage and mail flag cleared'
complete -c bwmon -n "__fish_bwmon_needs_command" -f -a "explain" -d 'The numbers behind a slice\'s ceils: used, threshold, quota, what is left, the formula, the clamps'
complete -c bwmon -n "__fish_bwmon_needs_command" -f -a "teardown" -d 'Remove the HTB hierarchy bwmon made on the device (the state file, with the node cap, is kept: a later `init` reuses it)'
complete -c bwmon -n "__fish_bwmon_needs_command" -f -a "history" -d 'Show usage per completed period, from the history file: newest first, with a total per slice'
complete -c bwmon -n "__fish_bwmon_needs_command" -f -a "generate" -d 'Write the man page or a shell completion script to stdout'
complete -c bwmon -n "__fish_bwmon_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bwmon -n "__fish_bwmon_using_subcommand init" -l bwcap -d 'Node cap: ceil of all non-exempt traffic (tc rate, e.g. 100mbit) [default: the cap in force, else the one the state remembers, else config `bwcap`, else bwmax]' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand init" -l bwmax -d 'Hardware maximum: ceil of exempt traffic and of the root class' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand init" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand init" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand init" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand init" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand init" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand init" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand init" -s h -l help -d 'Print help'
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -l input -d 'Read the slivers JSON from FILE instead of the config\'s `input` or stdin' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -l dry-run -d 'Print the changes (as `tc` commands an operator can replay) and mails it would make; change nothing'
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -l allow-mass-removal -d 'Go on even if this run would remove more than `max_removal_percent` of the live slices (and more than 3), or the input yields no live slice'
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -l rebuild-state -d 'Start a new state from the kernel\'s current counters, when the state file and its backup are both unusable (usage before now is lost)'
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand sync" -s h -l help -d 'Print help'
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -l format -d 'Output format' -r -f -a "table\t'Aligned columns for people (80 columns for names up to 16 characters): bytes in IEC units (K = KiB), rates in SI bit/s (k = 1000), a legend under it'
json\t'Stable JSON: bytes, bit/s, RFC 3339 times, `format_version`'
prometheus\t'Prometheus text, for the node exporter\'s textfile collector'"
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -l check -d 'For monitoring checks: exit 1 when a slice shown is capped, else 3 when a SLICE name is unknown, else 0 (Nagios: OK, WARNING, UNKNOWN)'
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -l no-legend -d 'Leave out the two legend lines under the table (what its units and flags mean), for scripts that read the rows'
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bwmon -n "__fish_bwmon_using_subcommand reset" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand reset" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand reset" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand reset" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand reset" -l dry-run -d 'Print the changes it would make, as `tc` commands; change nothing'
complete -c bwmon -n "__fish_bwmon_using_subcommand reset" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand reset" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand reset" -s h -l help -d 'Print help'
complete -c bwmon -n "__fish_bwmon_using_subcommand explain" -l format -d 'Output format' -r -f -a "table\t'One block per class, every byte shown'
json\t'Stable JSON: bytes, bit/s, RFC 3339 times, `format_version`'"
complete -c bwmon -n "__fish_bwmon_using_subcommand explain" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand explain" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand explain" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand explain" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand explain" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand explain" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand explain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bwmon -n "__fish_bwmon_using_subcommand teardown" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand teardown" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand teardown" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand teardown" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand teardown" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand teardown" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand teardown" -s h -l help -d 'Print help'
complete -c bwmon -n "__fish_bwmon_using_subcommand history" -l since -d 'Only periods that started at or after DATE (RFC 3339, or YYYY-MM-DD for midnight UTC)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand history" -l format -d 'Output format' -r -f -a "table\t'Aligned columns for people, then a total per slice'
json\t'Stable JSON: bytes, bit/s, RFC 3339 times, `format_version`, `totals`'
csv\t'CSV with a header line, one row per period (no total rows)'"
complete -c bwmon -n "__fish_bwmon_using_subcommand history" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand history" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand history" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand history" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand history" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand history" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand history" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s h -l help -d 'Print help'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "man" -d 'The man page, roff'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "completions" -d 'A completion script'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from man" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from man" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from man" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from man" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from man" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from man" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from man" -s h -l help -d 'Print help'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from completions" -s c -l config -d 'Configuration file [default: /etc/bwmon/bwmon.yaml, if present]' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from completions" -l dev -d 'Egress device to shape (overrides `dev` in the config)' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from completions" -l state -d 'State file (overrides `state_file` in the config)' -r -F
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from completions" -l now -d 'Act as if this were the current time (RFC 3339), for tests and what-ifs' -r
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from completions" -s v -l verbose -d 'More output: -v says what changed, -vv why'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from completions" -s q -l quiet -d 'Only errors'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "man" -d 'The man page, roff'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "completions" -d 'A completion script'
complete -c bwmon -n "__fish_bwmon_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and not __fish_seen_subcommand_from init sync status reset explain teardown history generate help" -f -a "init" -d 'Create the HTB hierarchy on the device, or change its cap'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and not __fish_seen_subcommand_from init sync status reset explain teardown history generate help" -f -a "sync" -d 'Run the enforcement cycle once: new and dead slices, usage, caps, mail'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and not __fish_seen_subcommand_from init sync status reset explain teardown history generate help" -f -a "status" -d 'Show where every slice stands: usage, limits, caps, period end'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and not __fish_seen_subcommand_from init sync status reset explain teardown history generate help" -f -a "reset" -d 'Start a new period for one slice now: caps lifted, usage and mail flag cleared'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and not __fish_seen_subcommand_from init sync status reset explain teardown history generate help" -f -a "explain" -d 'The numbers behind a slice\'s ceils: used, threshold, quota, what is left, the formula, the clamps'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and not __fish_seen_subcommand_from init sync status reset explain teardown history generate help" -f -a "teardown" -d 'Remove the HTB hierarchy bwmon made on the device (the state file, with the node cap, is kept: a later `init` reuses it)'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and not __fish_seen_subcommand_from init sync status reset explain teardown history generate help" -f -a "history" -d 'Show usage per completed period, from the history file: newest first, with a total per slice'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and not __fish_seen_subcommand_from init sync status reset explain teardown history generate help" -f -a "generate" -d 'Write the man page or a shell completion script to stdout'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and not __fish_seen_subcommand_from init sync status reset explain teardown history generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "man" -d 'The man page, roff'
complete -c bwmon -n "__fish_bwmon_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "completions" -d 'A completion script'
