package graphapi_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
)

// Example answers a user's voice note from the number that received it:
// download the audio, mark the message read with a typing indicator, and
// reply with text and a voice note. It runs against the fake Graph API.
func Example() {
	srv, err := graphapitest.New()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	incoming := srv.AddMedia([]byte("OggS..."), "audio/ogg; codecs=opus")

	client := graphapi.New(graphapi.Config{BaseURL: srv.URL, Token: graphapitest.Token})
	ctx := context.Background()
	const phoneNumberID, user, wamid = "106540352242922", "15551234567", "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQTdF"

	audio, err := client.DownloadMedia(ctx, incoming, 16<<20, "")
	if err != nil {
		log.Fatal(err)
	}
	if err := client.MarkRead(ctx, phoneNumberID, wamid, true); err != nil {
		log.Fatal(err)
	}
	ids, err := client.SendText(ctx, phoneNumberID, user, "Here is your answer.", graphapi.ReplyTo(wamid))
	if err != nil {
		log.Fatal(err)
	}
	mediaID, err := client.UploadMedia(ctx, phoneNumberID, strings.NewReader("OggS..."), "audio/ogg; codecs=opus", "answer.ogg")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.SendAudio(ctx, phoneNumberID, user, mediaID, true); err != nil {
		log.Fatal(err)
	}

	fmt.Println("downloaded", len(audio.Data), "bytes of", audio.MIMEType)
	fmt.Println("sent", len(ids), "text message")
	for _, m := range srv.Messages() {
		fmt.Printf("%s to %s: text=%q audio=%v voice=%v\n", m.Type, m.To, m.Text, m.AudioID != "", m.Voice)
	}
	// Output:
	// downloaded 7 bytes of audio/ogg; codecs=opus
	// sent 1 text message
	// text to 15551234567: text="Here is your answer." audio=false voice=false
	// audio to 15551234567: text="" audio=true voice=true
}
