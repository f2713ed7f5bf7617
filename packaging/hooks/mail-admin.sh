#!/bin/sh
# mail-admin.sh - on_match_exec example: mail the match event (JSON on stdin) to the admin.
#   on_match_exec = /usr/share/doc/hashgate/examples/hooks/mail-admin.sh
# Uses sendmail(8) (postfix, exim, msmtp-mta provide it).  The event holds the uploader's
# uid and path: mail it only to people allowed to see them.
TO=${HASHGATE_MAIL_TO:-root}
event=$(cat)
{
	printf 'To: %s\nSubject: hashgate: upload matched a hash list on %s\n' "$TO" "$(hostname)"
	printf 'Content-Type: text/plain; charset=utf-8\n\n'
	printf 'hashgate refused an upload that matched a hash list.\n\n%s\n' "$event"
	printf '\nSee: hashgate quarantine show ID (the "id" above)\n'
} | /usr/sbin/sendmail -t
