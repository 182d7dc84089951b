#!/usr/bin/env bash
# Deploys WhatsApp Node to Google Cloud as one Cloud Run function with
# production's backends: Firestore for markers and history, Pub/Sub push for
# the replies, Cloud Storage for staged audio, and the three WhatsApp secrets
# in Secret Manager. It then checks the deployed URL as Meta would and prints
# what is left to do on Meta's side.
#
#   PROJECT=my-project REGION=us-central1 \
#   WHATSAPP_APP_SECRET=... WHATSAPP_VERIFY_TOKEN=... WHATSAPP_ACCESS_TOKEN=... \
#   ./deploy.sh [--dry-run]
#
# Safe to run again: it creates only what is missing and redeploys. The three
# secrets are required the first time; given again later, each one that
# changed becomes a new version and, once the new revision serves, the older
# versions are disabled. --dry-run prints every command that would change the
# project and changes nothing (it still reads the project's state).
#
# Optional: FUNCTION (whatsapp-node), BUCKET (PROJECT-whatsapp-media), TOPIC
# (whatsapp-replies), FIRESTORE_LOCATION (REGION), CPU (1), MEMORY (1Gi),
# CONCURRENCY (40), MAX_INSTANCES (10), MIN_INSTANCES (0), WHATSAPP_WABA_ID
# (subscribes the app to that WhatsApp Business Account), and settings passed
# to the function: every setting of README's configuration table that is set
# (REPLY_MODE, SYSTEM_PROMPT, the limits, NUMBERS or NUMBERS_FILE, ...), but
# those for local runs and emulators.
set -euo pipefail

DRY_RUN=false
for arg in "$@"; do
  case $arg in
  --dry-run) DRY_RUN=true ;;
  -h | --help)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
    ;;
  *)
    echo "deploy.sh: unknown argument $arg (want --dry-run or --help)" >&2
    exit 2
    ;;
  esac
done

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}
# NUMBERS_FILE names a file on this machine, which the function does not
# have: its contents go to the function as NUMBERS. It is read before the cd
# below, so that a path relative to where deploy.sh was run works.
if [ -n "${NUMBERS_FILE:-}" ]; then
  [ -z "${NUMBERS:-}" ] || die "NUMBERS and NUMBERS_FILE are both set: use one"
  [ -r "$NUMBERS_FILE" ] || die "NUMBERS_FILE: cannot read $NUMBERS_FILE"
  # JSON has no line break inside a string, so dropping them keeps it whole.
  NUMBERS=$(tr -d '\r\n' <"$NUMBERS_FILE")
fi
# gcloud deploys the source it runs beside, and go signs with ./cmd/sign.
cd "$(dirname "$0")"
# Commands are printed to fd 3, so that hiding a command's own output
# (gcloud prints whole IAM policies) does not hide the command.
exec 3>&1

: "${PROJECT:?set PROJECT to the Google Cloud project id}"
: "${REGION:?set REGION, for example us-central1}"
FUNCTION=${FUNCTION:-whatsapp-node}
BUCKET=${BUCKET:-$PROJECT-whatsapp-media}
TOPIC=${TOPIC:-whatsapp-replies}
SUBSCRIPTION=$TOPIC-push
DEAD_LETTER=$TOPIC-dead
FIRESTORE_LOCATION=${FIRESTORE_LOCATION:-$REGION}
CPU=${CPU:-1}
MEMORY=${MEMORY:-1Gi}
CONCURRENCY=${CONCURRENCY:-40}
MAX_INSTANCES=${MAX_INSTANCES:-10}
MIN_INSTANCES=${MIN_INSTANCES:-0}
# The Graph API, for subscribing the app (tests point it at a fake).
GRAPH=${GRAPH_API_BASE_URL:-https://graph.facebook.com}/${GRAPH_API_VERSION:-v25.0}
AUDIENCE=whatsapp-node-push # the push token's audience, checked by the function
RUNTIME_SA=whatsapp-node@$PROJECT.iam.gserviceaccount.com
BUILD_SA=whatsapp-build@$PROJECT.iam.gserviceaccount.com
PUSH_SA=whatsapp-push@$PROJECT.iam.gserviceaccount.com
SECRETS=(WHATSAPP_APP_SECRET WHATSAPP_VERIFY_TOKEN WHATSAPP_ACCESS_TOKEN)

# query runs a gcloud command that only reads, also in a dry run.
query() { gcloud --project="$PROJECT" --quiet "$@"; }
exists() { query "$@" >/dev/null 2>&1; }
# change runs a gcloud command that changes the project, printing it first;
# a dry run only prints it. Secret values never appear in the arguments:
# they go in on standard input.
change() {
  if $DRY_RUN; then
    printf 'would run: gcloud %s\n' "$*" >&3
    return 0
  fi
  printf '+ gcloud %s\n' "$*" >&3
  gcloud --project="$PROJECT" --quiet "$@"
}
secret_id() { echo "$1" | tr '[:upper:]_' '[:lower:]-'; }
# trim prints $1 without surrounding whitespace, as the function reads it: a
# pasted secret often ends in a newline.
trim() {
  local v=${1#"${1%%[![:space:]]*}"}
  printf '%s' "${v%"${v##*[![:space:]]}"}"
}
# secret_value NAME prints the secret from the environment, else the latest
# stored version.
secret_value() {
  if [ -n "${!1:-}" ]; then
    trim "${!1}"
  else
    query secrets versions access latest --secret="$(secret_id "$1")"
  fi
}

for tool in gcloud curl go; do
  command -v "$tool" >/dev/null || die "$tool is required (go signs the smoke check's test webhook)"
done
exists projects describe "$PROJECT" ||
  die "project $PROJECT cannot be read: check the id and 'gcloud auth login' (and that billing is on)"
# Every secret needs a value before anything is made: a secret without one
# would only fail later, when the function starts.
absent=()
for name in "${SECRETS[@]}"; do
  if [ -z "${!name:-}" ] && ! exists secrets versions access latest --secret="$(secret_id "$name")"; then
    absent+=("$name")
  fi
done
if [ ${#absent[@]} -gt 0 ]; then
  die "set ${absent[*]}: nothing is stored for them yet (the App Secret is under App settings > Basic, the verify token is one you choose, the access token a System User's)"
fi
$DRY_RUN && echo "== dry run: nothing in $PROJECT will change"

echo "== APIs"
# iam and cloudresourcemanager are off in many new projects, and the service
# accounts and role grants below need them.
apis=(iam.googleapis.com cloudresourcemanager.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com firestore.googleapis.com pubsub.googleapis.com storage.googleapis.com
  speech.googleapis.com texttospeech.googleapis.com aiplatform.googleapis.com secretmanager.googleapis.com
  logging.googleapis.com)
enabled=$(query services list --enabled --format='value(config.name)')
missing=()
for api in "${apis[@]}"; do
  grep -qx "$api" <<<"$enabled" || missing+=("$api")
done
if [ ${#missing[@]} -gt 0 ]; then change services enable "${missing[@]}"; fi

echo "== secrets"
declare -A version # secret name -> the version the function is deployed with
for name in "${SECRETS[@]}"; do
  secret=$(secret_id "$name")
  exists secrets describe "$secret" || change secrets create "$secret" --replication-policy=automatic
  value=$(trim "${!name:-}")
  current=$(query secrets versions access latest --secret="$secret" 2>/dev/null || true)
  if [ -n "$value" ] && [ "$value" != "$current" ]; then
    change secrets versions add "$secret" --data-file=- < <(printf '%s' "$value")
    if $DRY_RUN; then
      version[$name]=new
      continue
    fi
  fi
  version[$name]=$(query secrets versions describe latest --secret="$secret" --format='value(name.basename())')
done

echo "== service accounts"
for sa in "$RUNTIME_SA:WhatsApp Node function" "$BUILD_SA:builds $FUNCTION" "$PUSH_SA:Pub/Sub push to $FUNCTION"; do
  email=${sa%%:*}
  exists iam service-accounts describe "$email" ||
    change iam service-accounts create "${email%%@*}" --display-name="${sa#*:}"
done
grant() { change projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$1" --role="$2" --condition=None >/dev/null; }
for role in roles/datastore.user roles/aiplatform.user roles/speech.client roles/logging.logWriter; do
  grant "$RUNTIME_SA" "$role"
done
# The build runs as its own account: on projects made since mid-2024 the
# default build account often lacks what a source deploy needs.
grant "$BUILD_SA" roles/run.builder
for name in "${SECRETS[@]}"; do
  change secrets add-iam-policy-binding "$(secret_id "$name")" --member="serviceAccount:$RUNTIME_SA" \
    --role=roles/secretmanager.secretAccessor >/dev/null
done

echo "== Firestore (markers, conversation turns, sender limits and daily spending expire through TTL policies)"
if db=$(query firestore databases describe --database='(default)' --format='value(type,locationId)' 2>/dev/null); then
  read -r db_type db_location <<<"$db"
  if [ "$db_type" != FIRESTORE_NATIVE ]; then
    die "the (default) database is in $db_type, and the function needs Firestore in Native mode. An empty one can be
  switched in the console (Firestore > the database > switch to Native mode); one that holds Datastore data
  cannot: deploy to another project."
  fi
  if [ "$db_location" != "$FIRESTORE_LOCATION" ]; then
    echo "note: the (default) database is in $db_location, not $FIRESTORE_LOCATION: it works, with each store call a longer way off"
  fi
else
  change firestore databases create --location="$FIRESTORE_LOCATION" --type=firestore-native
fi
for group in markers turns senders spending; do
  change firestore fields ttls update expireAt --collection-group="$group" --enable-ttl --async >/dev/null
done

echo "== Cloud Storage (staged voice notes and replies, deleted after 7 days)"
exists storage buckets describe "gs://$BUCKET" ||
  change storage buckets create "gs://$BUCKET" --location="$REGION" --uniform-bucket-level-access
lifecycle=$(mktemp)
trap 'rm -f "$lifecycle"' EXIT
echo '{"rule":[{"action":{"type":"Delete"},"condition":{"age":7}}]}' >"$lifecycle"
change storage buckets update "gs://$BUCKET" --lifecycle-file="$lifecycle" >/dev/null
change storage buckets add-iam-policy-binding "gs://$BUCKET" --member="serviceAccount:$RUNTIME_SA" \
  --role=roles/storage.objectAdmin >/dev/null

echo "== Pub/Sub topics"
exists pubsub topics describe "$TOPIC" || change pubsub topics create "$TOPIC"
exists pubsub topics describe "$DEAD_LETTER" || change pubsub topics create "$DEAD_LETTER"
exists pubsub subscriptions describe "$DEAD_LETTER-sub" ||
  change pubsub subscriptions create "$DEAD_LETTER-sub" --topic="$DEAD_LETTER" --message-retention-duration=7d
change pubsub topics add-iam-policy-binding "$TOPIC" --member="serviceAccount:$RUNTIME_SA" \
  --role=roles/pubsub.publisher >/dev/null

echo "== function"
pairs=("STORE=firestore" "QUEUE=pubsub" "GOOGLE_CLOUD_PROJECT=$PROJECT" "MEDIA_BUCKET=$BUCKET"
  "PUBSUB_TOPIC=$TOPIC" "PUBSUB_SERVICE_ACCOUNT=$PUSH_SA" "PUBSUB_AUDIENCE=$AUDIENCE")
# Every other setting of the function (README's table) goes through when it is
# set here, since --set-env-vars replaces whatever the service had.
for name in REPLY_MODE GEMINI_MODEL GOOGLE_CLOUD_LOCATION SYSTEM_PROMPT FALLBACK_MESSAGE HISTORY_TURNS HISTORY_TTL \
  MARKER_TTL CLAIM_LEASE SEND_CONFIRM_WINDOW TTS_VOICE TTS_LANGUAGE STT_ENGINE STT_MODEL STT_LOCATION STT_LANGUAGES \
  GRAPH_API_VERSION LOG_LEVEL SENDER_LIMIT_PER_MINUTE SENDER_LIMIT_PER_DAY NUMBER_DAILY_MESSAGES \
  NUMBER_DAILY_COST_USD CEILING_ACTION MAX_TEXT_CHARS MAX_VOICE_LENGTH MAX_MEDIA_MB ALLOW_SENDERS BLOCK_SENDERS \
  STOP_WORDS START_WORDS RESET_WORDS NUMBERS NOTICE_LIMIT_MINUTE NOTICE_LIMIT_DAY NOTICE_STOP NOTICE_START \
  NOTICE_RESET NOTICE_TEXT_TOO_LONG NOTICE_VOICE_TOO_LONG NOTICE_MEDIA_TOO_LARGE NOTICE_CEILING NOTICE_UNSUPPORTED; do
  if [ -n "${!name:-}" ]; then pairs+=("$name=${!name}"); fi
done
# Values may hold commas (word lists, NUMBERS' JSON, a prompt): then the list
# goes to gcloud with a delimiter of its own (see gcloud topic escaping).
delim=,
for pair in "${pairs[@]}"; do
  case $pair in
  *"|!|"*) die "${pair%%=*} holds '|!|', which deploy.sh needs as a delimiter" ;;
  *,*) delim='|!|' ;;
  esac
done
env_vars=""
for pair in "${pairs[@]}"; do env_vars+="${env_vars:+$delim}$pair"; done
if [ "$delim" != , ]; then env_vars="^$delim^$env_vars"; fi
secrets=""
for name in "${SECRETS[@]}"; do
  secrets+="${secrets:+,}$name=$(secret_id "$name"):${version[$name]}"
done
# Meta calls the webhook without Google credentials. --no-invoker-iam-check
# makes the service public without granting allUsers, which the common
# domain-restricted-sharing policy refuses; the webhook checks Meta's
# signature and /process the push subscription's token. A revision whose
# settings are bad fails to start, so the deploy fails and the previous
# revision keeps serving. Capacity: see "Deploying" in README.md.
change run deploy "$FUNCTION" --source=. --function=Webhook --base-image=go126 --region="$REGION" \
  --build-service-account="projects/$PROJECT/serviceAccounts/$BUILD_SA" --service-account="$RUNTIME_SA" \
  --no-invoker-iam-check --cpu="$CPU" --memory="$MEMORY" --concurrency="$CONCURRENCY" \
  --max-instances="$MAX_INSTANCES" --min-instances="$MIN_INSTANCES" --cpu-boost --timeout=600 \
  --set-env-vars="$env_vars" --set-secrets="$secrets"
if $DRY_RUN; then
  URL=$(query run services describe "$FUNCTION" --region="$REGION" --format='value(status.url)' 2>/dev/null ||
    echo "https://$FUNCTION-deployed-url")
else
  URL=$(query run services describe "$FUNCTION" --region="$REGION" --format='value(status.url)')
fi

echo "== Pub/Sub push subscription to $URL/process"
PROJECT_NUMBER=$(query projects describe "$PROJECT" --format='value(projectNumber)')
PUBSUB_AGENT=serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com
change iam service-accounts add-iam-policy-binding "$PUSH_SA" --member="$PUBSUB_AGENT" \
  --role=roles/iam.serviceAccountTokenCreator >/dev/null
change pubsub topics add-iam-policy-binding "$DEAD_LETTER" --member="$PUBSUB_AGENT" --role=roles/pubsub.publisher >/dev/null
push_flags=(--push-endpoint="$URL/process" --push-auth-service-account="$PUSH_SA"
  --push-auth-token-audience="$AUDIENCE" --ack-deadline=600 --min-retry-delay=10s --max-retry-delay=600s
  --dead-letter-topic="$DEAD_LETTER" --max-delivery-attempts=10)
if exists pubsub subscriptions describe "$SUBSCRIPTION"; then
  change pubsub subscriptions update "$SUBSCRIPTION" "${push_flags[@]}"
else
  # Ordering (by sender) can only be chosen when the subscription is made.
  change pubsub subscriptions create "$SUBSCRIPTION" --topic="$TOPIC" --enable-message-ordering \
    --expiration-period=never "${push_flags[@]}"
fi
change pubsub subscriptions add-iam-policy-binding "$SUBSCRIPTION" --member="$PUBSUB_AGENT" \
  --role=roles/pubsub.subscriber >/dev/null

echo "== secret versions (the revision serving now reads only the newest)"
for name in "${SECRETS[@]}"; do
  secret=$(secret_id "$name")
  # In a dry run a secret may not exist yet: then there is nothing to list.
  for old in $(query secrets versions list "$secret" --filter='state=ENABLED' --format='value(name.basename())' 2>/dev/null); do
    if [ "$old" != "${version[$name]}" ]; then change secrets versions disable "$old" --secret="$secret"; fi
  done
done

echo "== smoke check of $URL"
if $DRY_RUN; then
  echo "would check: the subscription handshake and a signed status webhook, both answered 200"
else
  challenge=$RANDOM$RANDOM
  # The token goes in on standard input, not in curl's arguments.
  answer=$(secret_value WHATSAPP_VERIFY_TOKEN | curl -sS -o /dev/stdout -w ' %{http_code}' -G \
    --data-urlencode hub.mode=subscribe --data-urlencode hub.challenge="$challenge" \
    --data-urlencode hub.verify_token@- "$URL/webhook") || die "handshake: $URL cannot be reached"
  case $answer in
  "$challenge 200") echo "handshake: 200, challenge echoed" ;;
  *" 403") die "handshake: 403 from Google, before the function ran: public access is off. An organisation policy may
  forbid disabling the invoker check; ask an administrator for roles/run.admin on $FUNCTION, or to allow it, then run
  gcloud run services update $FUNCTION --region=$REGION --no-invoker-iam-check" ;;
  *) die "handshake: got '${answer: -3}', want 200 with the challenge (see the function's logs)" ;;
  esac
  # A delivery status for a message this service never sent: verified,
  # acknowledged, and otherwise ignored.
  body=$(mktemp)
  trap 'rm -f "$lifecycle" "$body"' EXIT
  printf '%s' '{"object":"whatsapp_business_account","entry":[{"id":"0","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"0","phone_number_id":"0"},"statuses":[{"id":"wamid.deploy-smoke-check","status":"delivered","timestamp":"'"$(date +%s)"'","recipient_id":"0"}]}}]}]}' >"$body"
  signature=$(WHATSAPP_APP_SECRET=$(secret_value WHATSAPP_APP_SECRET) go run ./cmd/sign "$body")
  code=$(curl -sS -o /dev/null -w '%{http_code}' -H "$signature" -H 'Content-Type: application/json' \
    --data-binary @"$body" "$URL/") || die "signed webhook: $URL cannot be reached"
  [ "$code" = 200 ] || die "signed webhook: got $code, want 200 (401 means the stored App Secret does not sign as expected)"
  echo "signed status webhook: 200"
fi

if [ -n "${WHATSAPP_WABA_ID:-}" ]; then
  echo "== Meta: subscribe the app to WhatsApp Business Account $WHATSAPP_WABA_ID"
  if $DRY_RUN; then
    echo "would run: curl -X POST $GRAPH/$WHATSAPP_WABA_ID/subscribed_apps (with the access token)"
  else
    # The token goes in a header read from a pipe, not in curl's arguments.
    answer=$(curl -sS -X POST -H @<(printf 'Authorization: Bearer %s\n' "$(secret_value WHATSAPP_ACCESS_TOKEN)") \
      "$GRAPH/$WHATSAPP_WABA_ID/subscribed_apps") || die "subscribed_apps: Graph API cannot be reached"
    grep -q '"success":[[:space:]]*true' <<<"$answer" ||
      die "subscribing the app to WhatsApp Business Account $WHATSAPP_WABA_ID failed: $answer"
    echo "app subscribed to WhatsApp Business Account $WHATSAPP_WABA_ID"
  fi
fi
echo
if $DRY_RUN; then echo "Dry run: nothing changed. After a real run, this is left to do on Meta's side:"; else
  echo "Deployed. What is left on Meta's side (developers.facebook.com, your app):"
fi
cat <<EOF
  1. WhatsApp > Configuration > Webhook: callback URL $URL/webhook
     and the verify token stored in the whatsapp-verify-token secret; then subscribe to the 'messages' field.
  2. Use a System User access token (Business settings > Users > System users, with whatsapp_business_messaging
     and whatsapp_business_management): a temporary token expires in 24 hours and every reply then fails with
     error 190. Rotate with WHATSAPP_ACCESS_TOKEN=... ./deploy.sh
EOF
if [ -z "${WHATSAPP_WABA_ID:-}" ]; then
  echo "  3. Subscribe the app to your WhatsApp Business Account: rerun with WHATSAPP_WABA_ID=<its id>, or"
  echo "     curl -X POST -H 'Authorization: Bearer <token>' $GRAPH/<WABA_ID>/subscribed_apps"
fi
