package speech

import "testing"

// answers are first pieces of answers as the Chunker cuts them (about 160
// bytes or more), in the languages of the table.
var answers = map[string]string{
	"en": "Sure, I have booked a table for two tomorrow at nine in the evening. The restaurant is near the station, and they will keep the table for fifteen minutes.",
	"es": "Claro, he reservado una mesa para dos mañana a las nueve de la noche. El restaurante está cerca de la estación y guardarán la mesa durante quince minutos.",
	"it": "Certo, ho prenotato un tavolo per due domani alle nove di sera. Il ristorante è vicino alla stazione e terranno il tavolo per quindici minuti.",
	"pt": "Claro, reservei uma mesa para dois amanhã às nove da noite. O restaurante fica perto da estação e eles vão guardar a mesa por quinze minutos.",
	"fr": "Bien sûr, j'ai réservé une table pour deux demain à neuf heures du soir. Le restaurant est près de la gare et ils garderont la table pendant quinze minutes.",
	"de": "Klar, ich habe für morgen um neun Uhr abends einen Tisch für zwei reserviert. Das Restaurant liegt nahe am Bahnhof und hält den Tisch fünfzehn Minuten lang frei.",
	"nl": "Natuurlijk, ik heb een tafel voor twee gereserveerd voor morgen om negen uur 's avonds. Het restaurant ligt vlak bij het station en ze houden de tafel een kwartier vrij.",
	"ru": "Конечно, я забронировал столик на двоих завтра на девять вечера. Ресторан находится рядом с вокзалом, и столик будут держать пятнадцать минут.",
	"uk": "Звісно, я забронював столик на двох завтра на дев'яту вечора. Ресторан розташований біля вокзалу, і столик триматимуть п'ятнадцять хвилин.",
	"ja": "承知しました。明日の夜九時に二名様でテーブルを予約しました。レストランは駅の近くにあり、テーブルは十五分間確保されます。",
	"zh": "好的，我已经为您预订了明天晚上九点的两人餐桌。餐厅在车站附近，他们会为您保留餐桌十五分钟。",
	"hi": "ज़रूर, मैंने कल रात नौ बजे दो लोगों के लिए एक टेबल बुक कर दी है। रेस्टोरेंट स्टेशन के पास है और वे टेबल पंद्रह मिनट तक रखेंगे।",
	"ar": "بالتأكيد، لقد حجزت طاولة لشخصين غدًا في الساعة التاسعة مساءً. المطعم قريب من المحطة وسيحتفظون بالطاولة لمدة خمس عشرة دقيقة.",
	"tr": "Tabii, yarın akşam saat dokuz için iki kişilik bir masa ayırttım. Restoran istasyonun yakınında ve masayı on beş dakika tutacaklar.",
	"pl": "Oczywiście, zarezerwowałem stolik dla dwóch osób na jutro na dziewiątą wieczorem. Restauracja jest blisko dworca i przytrzymają stolik przez piętnaście minut.",
}

// TestDetectLanguage allows the detector to be unsure (the caller then uses
// its hint) but never wrong, and sure of nearly all of these.
func TestDetectLanguage(t *testing.T) {
	t.Parallel()
	unsure := 0
	for want, text := range answers {
		switch got := DetectLanguage(text); got {
		case want:
		case "":
			unsure++
			t.Logf("DetectLanguage(%.30q...) is unsure, want %q", text, want)
		default:
			t.Errorf("DetectLanguage(%.30q...) = %q, want %q", text, got, want)
		}
	}
	if unsure > 1 {
		t.Errorf("DetectLanguage is unsure of %d of %d answers, want at most 1", unsure, len(answers))
	}
}

func TestAnswerLanguage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, answer, hint, want string
	}{
		{"the text tells", answers["es"], "", "es"},
		{"the text wins over the user's language", answers["es"], "en-US", "es"},
		{"a hint in the same language keeps its region", answers["es"], "es-us", "es-US"},
		{"too short to tell: the hint", "Ciao!", "it-IT", "it-IT"},
		{"nothing to go on: the default", "Ok.", "", ""},
	}
	for _, tt := range tests {
		if got := AnswerLanguage(tt.answer, tt.hint); got != tt.want {
			t.Errorf("%s: AnswerLanguage(%.20q, %q) = %q, want %q", tt.name, tt.answer, tt.hint, got, tt.want)
		}
	}
}
