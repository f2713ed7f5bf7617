#!/bin/sh
# webhook.sh - on_match_exec example: POST the match event (JSON on stdin) to a webhook.
#   on_match_exec = /usr/share/doc/hashgate/examples/hooks/webhook.sh   (copy it and edit URL)
# hashgatefs@.service allows only AF_UNIX sockets: a hook that needs the network needs a
# drop-in with "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" (see hashgatefs(8)).
# Exit status non-zero makes hashgatefs log the failure and count it (hook_failures);
# `hashgate scan` prints it, counts it and exits 2.
URL=${HASHGATE_WEBHOOK_URL:-https://hooks.example.org/hashgate}
exec curl --silent --show-error --fail --max-time 20 \
	-H 'Content-Type: application/json' --data-binary @- "$URL"
