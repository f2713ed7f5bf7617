#!/bin/sh
# mail-admin.sh - on_match_exec example: mail the match event (JSON on stdin) to the admin.
#   on_match_exec = /usr/share/doc/hashgate/examples/hooks/mail-admin.sh
# Uses sendmail(8) (postfix, exim, msmtp-mta provide it).  The event holds the uploader's
# uid and path: mail it only to people allowed to see them.
# `hashgate scan` sends its matches too ("source":"scan"; string values are escaped, so that
# text cannot come from a file name).
TO=${HASHGATE_MAIL_TO:-root}
event=$(cat)
case $event in
*'"source":"scan"'*)
	what='a file found by hashgate scan'
	say='hashgate scan found a file that matched a hash list ("action" says what it did).' ;;
*)
	what='upload'
	say='hashgate refused an upload that matched a hash list.' ;;
esac
{
	printf 'To: %s\nSubject: hashgate: %s matched a hash list on %s\n' "$TO" "$what" \
		"$(hostname)"
	printf 'Content-Type: text/plain; charset=utf-8\n\n'
	printf '%s\n\n%s\n' "$say" "$event"
	printf '\nSee: hashgate quarantine show ID (the "id" above, when not 0)\n'
} | /usr/sbin/sendmail -t
