#!/usr/bin/env bash
# Deploys WhatsApp Node to Google Cloud as one HTTP Cloud Function (Cloud Run
# functions, gen2) with production's backends: Firestore for markers and
# history, Pub/Sub push for the replies, Cloud Storage for staged audio, and the
# three WhatsApp secrets in Secret Manager. Safe to run again: it creates what
# is missing and redeploys the function.
#
#   PROJECT=my-project REGION=us-central1 \
#   WHATSAPP_APP_SECRET=... WHATSAPP_VERIFY_TOKEN=... WHATSAPP_ACCESS_TOKEN=... \
#   ./deploy.sh
#
# The secrets are read from the environment only to store them in Secret
# Manager (a new version when they are given); the function reads them from
# there. Optional: FUNCTION (whatsapp-node), BUCKET (PROJECT-whatsapp-media),
# REPLY_MODE, GEMINI_MODEL, TTS_VOICE, TTS_LANGUAGE, STT_LANGUAGES, STT_LOCATION.
set -euo pipefail

: "${PROJECT:?set PROJECT to the Google Cloud project id}"
: "${REGION:?set REGION, for example us-central1}"
FUNCTION=${FUNCTION:-whatsapp-node}
BUCKET=${BUCKET:-$PROJECT-whatsapp-media}
TOPIC=${TOPIC:-whatsapp-replies}
SUBSCRIPTION=$TOPIC-push
DEAD_LETTER=$TOPIC-dead
AUDIENCE=whatsapp-node-push # the push token's audience, checked by the function
RUNTIME_SA=whatsapp-node@$PROJECT.iam.gserviceaccount.com
PUSH_SA=whatsapp-push@$PROJECT.iam.gserviceaccount.com

gc() { gcloud --project="$PROJECT" --quiet "$@"; }
exists() { gc "$@" >/dev/null 2>&1; }

echo "== APIs"
gc services enable cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com \
  artifactregistry.googleapis.com firestore.googleapis.com pubsub.googleapis.com storage.googleapis.com \
  speech.googleapis.com texttospeech.googleapis.com aiplatform.googleapis.com secretmanager.googleapis.com

echo "== service accounts"
exists iam service-accounts describe "$RUNTIME_SA" ||
  gc iam service-accounts create whatsapp-node --display-name="WhatsApp Node function"
exists iam service-accounts describe "$PUSH_SA" ||
  gc iam service-accounts create whatsapp-push --display-name="Pub/Sub push to $FUNCTION"
for role in roles/datastore.user roles/aiplatform.user roles/speech.client roles/logging.logWriter; do
  gc projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$RUNTIME_SA" --role="$role" \
    --condition=None >/dev/null
done

echo "== secrets"
for name in WHATSAPP_APP_SECRET WHATSAPP_VERIFY_TOKEN WHATSAPP_ACCESS_TOKEN; do
  secret=$(echo "$name" | tr '[:upper:]_' '[:lower:]-')
  exists secrets describe "$secret" || gc secrets create "$secret" --replication-policy=automatic
  if [ -n "${!name:-}" ]; then
    printf '%s' "${!name}" | gc secrets versions add "$secret" --data-file=- >/dev/null
  fi
  gc secrets add-iam-policy-binding "$secret" --member="serviceAccount:$RUNTIME_SA" \
    --role=roles/secretmanager.secretAccessor >/dev/null
done

echo "== Firestore (markers and conversation turns expire through TTL policies)"
exists firestore databases describe --database='(default)' ||
  gc firestore databases create --location="$REGION" --type=firestore-native
for group in markers turns; do
  gc firestore fields ttls update expireAt --collection-group="$group" --enable-ttl --async >/dev/null
done

echo "== Cloud Storage (staged voice notes and replies, deleted after 7 days)"
exists storage buckets describe "gs://$BUCKET" ||
  gc storage buckets create "gs://$BUCKET" --location="$REGION" --uniform-bucket-level-access
lifecycle=$(mktemp)
echo '{"rule":[{"action":{"type":"Delete"},"condition":{"age":7}}]}' >"$lifecycle"
gc storage buckets update "gs://$BUCKET" --lifecycle-file="$lifecycle" >/dev/null
rm -f "$lifecycle"
gc storage buckets add-iam-policy-binding "gs://$BUCKET" --member="serviceAccount:$RUNTIME_SA" \
  --role=roles/storage.objectAdmin >/dev/null

echo "== Pub/Sub topics"
exists pubsub topics describe "$TOPIC" || gc pubsub topics create "$TOPIC"
exists pubsub topics describe "$DEAD_LETTER" || gc pubsub topics create "$DEAD_LETTER"
exists pubsub subscriptions describe "$DEAD_LETTER-sub" ||
  gc pubsub subscriptions create "$DEAD_LETTER-sub" --topic="$DEAD_LETTER" --message-retention-duration=7d
gc pubsub topics add-iam-policy-binding "$TOPIC" --member="serviceAccount:$RUNTIME_SA" \
  --role=roles/pubsub.publisher >/dev/null

echo "== function"
env_vars="STORE=firestore,QUEUE=pubsub,GOOGLE_CLOUD_PROJECT=$PROJECT,MEDIA_BUCKET=$BUCKET"
env_vars+=",PUBSUB_TOPIC=$TOPIC,PUBSUB_SERVICE_ACCOUNT=$PUSH_SA,PUBSUB_AUDIENCE=$AUDIENCE"
for name in REPLY_MODE GEMINI_MODEL TTS_VOICE TTS_LANGUAGE STT_LOCATION; do
  if [ -n "${!name:-}" ]; then env_vars+=",$name=${!name}"; fi
done
# STT_LANGUAGES holds commas, so it goes in with gcloud's alternative delimiter.
if [ -n "${STT_LANGUAGES:-}" ]; then env_vars="^;^${env_vars//,/;};STT_LANGUAGES=$STT_LANGUAGES"; fi
# Meta must reach the webhook without Google credentials, so the function is
# public; the webhook checks Meta's signature and /process checks the push
# subscription's token. The timeout matches the subscription's ack deadline.
gc functions deploy "$FUNCTION" --gen2 --runtime=go126 --region="$REGION" --source=. \
  --entry-point=Webhook --trigger-http --allow-unauthenticated \
  --service-account="$RUNTIME_SA" --memory=512Mi --timeout=600s --max-instances=20 \
  --set-env-vars="$env_vars" \
  --set-secrets="WHATSAPP_APP_SECRET=whatsapp-app-secret:latest,WHATSAPP_VERIFY_TOKEN=whatsapp-verify-token:latest,WHATSAPP_ACCESS_TOKEN=whatsapp-access-token:latest"
URL=$(gc functions describe "$FUNCTION" --gen2 --region="$REGION" --format='value(serviceConfig.uri)')

echo "== Pub/Sub push subscription to $URL/process"
PROJECT_NUMBER=$(gc projects describe "$PROJECT" --format='value(projectNumber)')
PUBSUB_AGENT=serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com
gc iam service-accounts add-iam-policy-binding "$PUSH_SA" --member="$PUBSUB_AGENT" \
  --role=roles/iam.serviceAccountTokenCreator >/dev/null
gc pubsub topics add-iam-policy-binding "$DEAD_LETTER" --member="$PUBSUB_AGENT" --role=roles/pubsub.publisher >/dev/null
push_flags=(--push-endpoint="$URL/process" --push-auth-service-account="$PUSH_SA"
  --push-auth-token-audience="$AUDIENCE" --ack-deadline=600 --min-retry-delay=10s --max-retry-delay=600s
  --dead-letter-topic="$DEAD_LETTER" --max-delivery-attempts=10)
if exists pubsub subscriptions describe "$SUBSCRIPTION"; then
  gc pubsub subscriptions update "$SUBSCRIPTION" "${push_flags[@]}"
else
  # Ordering (by sender) can only be chosen when the subscription is made.
  gc pubsub subscriptions create "$SUBSCRIPTION" --topic="$TOPIC" --enable-message-ordering \
    --expiration-period=never "${push_flags[@]}"
fi
gc pubsub subscriptions add-iam-policy-binding "$SUBSCRIPTION" --member="$PUBSUB_AGENT" \
  --role=roles/pubsub.subscriber >/dev/null

echo
echo "Deployed. In the Meta app's WhatsApp > Configuration, set the callback URL to"
echo "  $URL/webhook"
echo "with the verify token stored in the whatsapp-verify-token secret, and subscribe to the 'messages' field."
