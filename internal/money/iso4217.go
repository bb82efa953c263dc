package money

// This table is the ISO 4217 "List One" of active codes, as published by the
// maintenance agency (SIX) in 2025, with each code's minor unit. Fund codes
// (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW) are included because they are
// active codes with a minor unit; codes without one (precious metals, XDR,
// XSU, XUA, the test and "no currency" codes) are not, since a ledger cannot
// hold them in integer minor units. Withdrawn codes (HRK, ANG, SLL, ZWL, ...)
// are refused. The table is a switch, not a map, so that it cannot be
// modified at run time.

// codeList holds every code that lookup knows, sorted, for Codes.
const codeList = "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD " +
	"BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP " +
	"CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD " +
	"FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR " +
	"IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK " +
	"LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK " +
	"MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR " +
	"PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS " +
	"SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH " +
	"UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF " +
	"XPF YER ZAR ZMW ZWG"

// lookup returns the currency for an exact, upper-case ISO 4217 code.
func lookup(code string) (Currency, bool) {
	switch code {
	case "AED":
		return Currency{Code: "AED", Exponent: 2, Name: "UAE Dirham"}, true
	case "AFN":
		return Currency{Code: "AFN", Exponent: 2, Name: "Afghani"}, true
	case "ALL":
		return Currency{Code: "ALL", Exponent: 2, Name: "Lek"}, true
	case "AMD":
		return Currency{Code: "AMD", Exponent: 2, Name: "Armenian Dram"}, true
	case "AOA":
		return Currency{Code: "AOA", Exponent: 2, Name: "Kwanza"}, true
	case "ARS":
		return Currency{Code: "ARS", Exponent: 2, Name: "Argentine Peso"}, true
	case "AUD":
		return Currency{Code: "AUD", Exponent: 2, Name: "Australian Dollar"}, true
	case "AWG":
		return Currency{Code: "AWG", Exponent: 2, Name: "Aruban Florin"}, true
	case "AZN":
		return Currency{Code: "AZN", Exponent: 2, Name: "Azerbaijan Manat"}, true
	case "BAM":
		return Currency{Code: "BAM", Exponent: 2, Name: "Convertible Mark"}, true
	case "BBD":
		return Currency{Code: "BBD", Exponent: 2, Name: "Barbados Dollar"}, true
	case "BDT":
		return Currency{Code: "BDT", Exponent: 2, Name: "Taka"}, true
	case "BGN":
		return Currency{Code: "BGN", Exponent: 2, Name: "Bulgarian Lev"}, true
	case "BHD":
		return Currency{Code: "BHD", Exponent: 3, Name: "Bahraini Dinar"}, true
	case "BIF":
		return Currency{Code: "BIF", Exponent: 0, Name: "Burundi Franc"}, true
	case "BMD":
		return Currency{Code: "BMD", Exponent: 2, Name: "Bermudian Dollar"}, true
	case "BND":
		return Currency{Code: "BND", Exponent: 2, Name: "Brunei Dollar"}, true
	case "BOB":
		return Currency{Code: "BOB", Exponent: 2, Name: "Boliviano"}, true
	case "BOV":
		return Currency{Code: "BOV", Exponent: 2, Name: "Mvdol"}, true
	case "BRL":
		return Currency{Code: "BRL", Exponent: 2, Name: "Brazilian Real"}, true
	case "BSD":
		return Currency{Code: "BSD", Exponent: 2, Name: "Bahamian Dollar"}, true
	case "BTN":
		return Currency{Code: "BTN", Exponent: 2, Name: "Ngultrum"}, true
	case "BWP":
		return Currency{Code: "BWP", Exponent: 2, Name: "Pula"}, true
	case "BYN":
		return Currency{Code: "BYN", Exponent: 2, Name: "Belarusian Ruble"}, true
	case "BZD":
		return Currency{Code: "BZD", Exponent: 2, Name: "Belize Dollar"}, true
	case "CAD":
		return Currency{Code: "CAD", Exponent: 2, Name: "Canadian Dollar"}, true
	case "CDF":
		return Currency{Code: "CDF", Exponent: 2, Name: "Congolese Franc"}, true
	case "CHE":
		return Currency{Code: "CHE", Exponent: 2, Name: "WIR Euro"}, true
	case "CHF":
		return Currency{Code: "CHF", Exponent: 2, Name: "Swiss Franc"}, true
	case "CHW":
		return Currency{Code: "CHW", Exponent: 2, Name: "WIR Franc"}, true
	case "CLF":
		return Currency{Code: "CLF", Exponent: 4, Name: "Unidad de Fomento"}, true
	case "CLP":
		return Currency{Code: "CLP", Exponent: 0, Name: "Chilean Peso"}, true
	case "CNY":
		return Currency{Code: "CNY", Exponent: 2, Name: "Yuan Renminbi"}, true
	case "COP":
		return Currency{Code: "COP", Exponent: 2, Name: "Colombian Peso"}, true
	case "COU":
		return Currency{Code: "COU", Exponent: 2, Name: "Unidad de Valor Real"}, true
	case "CRC":
		return Currency{Code: "CRC", Exponent: 2, Name: "Costa Rican Colon"}, true
	case "CUP":
		return Currency{Code: "CUP", Exponent: 2, Name: "Cuban Peso"}, true
	case "CVE":
		return Currency{Code: "CVE", Exponent: 2, Name: "Cabo Verde Escudo"}, true
	case "CZK":
		return Currency{Code: "CZK", Exponent: 2, Name: "Czech Koruna"}, true
	case "DJF":
		return Currency{Code: "DJF", Exponent: 0, Name: "Djibouti Franc"}, true
	case "DKK":
		return Currency{Code: "DKK", Exponent: 2, Name: "Danish Krone"}, true
	case "DOP":
		return Currency{Code: "DOP", Exponent: 2, Name: "Dominican Peso"}, true
	case "DZD":
		return Currency{Code: "DZD", Exponent: 2, Name: "Algerian Dinar"}, true
	case "EGP":
		return Currency{Code: "EGP", Exponent: 2, Name: "Egyptian Pound"}, true
	case "ERN":
		return Currency{Code: "ERN", Exponent: 2, Name: "Nakfa"}, true
	case "ETB":
		return Currency{Code: "ETB", Exponent: 2, Name: "Ethiopian Birr"}, true
	case "EUR":
		return Currency{Code: "EUR", Exponent: 2, Name: "Euro"}, true
	case "FJD":
		return Currency{Code: "FJD", Exponent: 2, Name: "Fiji Dollar"}, true
	case "FKP":
		return Currency{Code: "FKP", Exponent: 2, Name: "Falkland Islands Pound"}, true
	case "GBP":
		return Currency{Code: "GBP", Exponent: 2, Name: "Pound Sterling"}, true
	case "GEL":
		return Currency{Code: "GEL", Exponent: 2, Name: "Lari"}, true
	case "GHS":
		return Currency{Code: "GHS", Exponent: 2, Name: "Ghana Cedi"}, true
	case "GIP":
		return Currency{Code: "GIP", Exponent: 2, Name: "Gibraltar Pound"}, true
	case "GMD":
		return Currency{Code: "GMD", Exponent: 2, Name: "Dalasi"}, true
	case "GNF":
		return Currency{Code: "GNF", Exponent: 0, Name: "Guinean Franc"}, true
	case "GTQ":
		return Currency{Code: "GTQ", Exponent: 2, Name: "Quetzal"}, true
	case "GYD":
		return Currency{Code: "GYD", Exponent: 2, Name: "Guyana Dollar"}, true
	case "HKD":
		return Currency{Code: "HKD", Exponent: 2, Name: "Hong Kong Dollar"}, true
	case "HNL":
		return Currency{Code: "HNL", Exponent: 2, Name: "Lempira"}, true
	case "HTG":
		return Currency{Code: "HTG", Exponent: 2, Name: "Gourde"}, true
	case "HUF":
		return Currency{Code: "HUF", Exponent: 2, Name: "Forint"}, true
	case "IDR":
		return Currency{Code: "IDR", Exponent: 2, Name: "Rupiah"}, true
	case "ILS":
		return Currency{Code: "ILS", Exponent: 2, Name: "New Israeli Sheqel"}, true
	case "INR":
		return Currency{Code: "INR", Exponent: 2, Name: "Indian Rupee"}, true
	case "IQD":
		return Currency{Code: "IQD", Exponent: 3, Name: "Iraqi Dinar"}, true
	case "IRR":
		return Currency{Code: "IRR", Exponent: 2, Name: "Iranian Rial"}, true
	case "ISK":
		return Currency{Code: "ISK", Exponent: 0, Name: "Iceland Krona"}, true
	case "JMD":
		return Currency{Code: "JMD", Exponent: 2, Name: "Jamaican Dollar"}, true
	case "JOD":
		return Currency{Code: "JOD", Exponent: 3, Name: "Jordanian Dinar"}, true
	case "JPY":
		return Currency{Code: "JPY", Exponent: 0, Name: "Yen"}, true
	case "KES":
		return Currency{Code: "KES", Exponent: 2, Name: "Kenyan Shilling"}, true
	case "KGS":
		return Currency{Code: "KGS", Exponent: 2, Name: "Som"}, true
	case "KHR":
		return Currency{Code: "KHR", Exponent: 2, Name: "Riel"}, true
	case "KMF":
		return Currency{Code: "KMF", Exponent: 0, Name: "Comorian Franc"}, true
	case "KPW":
		return Currency{Code: "KPW", Exponent: 2, Name: "North Korean Won"}, true
	case "KRW":
		return Currency{Code: "KRW", Exponent: 0, Name: "Won"}, true
	case "KWD":
		return Currency{Code: "KWD", Exponent: 3, Name: "Kuwaiti Dinar"}, true
	case "KYD":
		return Currency{Code: "KYD", Exponent: 2, Name: "Cayman Islands Dollar"}, true
	case "KZT":
		return Currency{Code: "KZT", Exponent: 2, Name: "Tenge"}, true
	case "LAK":
		return Currency{Code: "LAK", Exponent: 2, Name: "Lao Kip"}, true
	case "LBP":
		return Currency{Code: "LBP", Exponent: 2, Name: "Lebanese Pound"}, true
	case "LKR":
		return Currency{Code: "LKR", Exponent: 2, Name: "Sri Lanka Rupee"}, true
	case "LRD":
		return Currency{Code: "LRD", Exponent: 2, Name: "Liberian Dollar"}, true
	case "LSL":
		return Currency{Code: "LSL", Exponent: 2, Name: "Loti"}, true
	case "LYD":
		return Currency{Code: "LYD", Exponent: 3, Name: "Libyan Dinar"}, true
	case "MAD":
		return Currency{Code: "MAD", Exponent: 2, Name: "Moroccan Dirham"}, true
	case "MDL":
		return Currency{Code: "MDL", Exponent: 2, Name: "Moldovan Leu"}, true
	case "MGA":
		return Currency{Code: "MGA", Exponent: 2, Name: "Malagasy Ariary"}, true
	case "MKD":
		return Currency{Code: "MKD", Exponent: 2, Name: "Denar"}, true
	case "MMK":
		return Currency{Code: "MMK", Exponent: 2, Name: "Kyat"}, true
	case "MNT":
		return Currency{Code: "MNT", Exponent: 2, Name: "Tugrik"}, true
	case "MOP":
		return Currency{Code: "MOP", Exponent: 2, Name: "Pataca"}, true
	case "MRU":
		return Currency{Code: "MRU", Exponent: 2, Name: "Ouguiya"}, true
	case "MUR":
		return Currency{Code: "MUR", Exponent: 2, Name: "Mauritius Rupee"}, true
	case "MVR":
		return Currency{Code: "MVR", Exponent: 2, Name: "Rufiyaa"}, true
	case "MWK":
		return Currency{Code: "MWK", Exponent: 2, Name: "Malawi Kwacha"}, true
	case "MXN":
		return Currency{Code: "MXN", Exponent: 2, Name: "Mexican Peso"}, true
	case "MXV":
		return Currency{Code: "MXV", Exponent: 2, Name: "Mexican Unidad de Inversion (UDI)"}, true
	case "MYR":
		return Currency{Code: "MYR", Exponent: 2, Name: "Malaysian Ringgit"}, true
	case "MZN":
		return Currency{Code: "MZN", Exponent: 2, Name: "Mozambique Metical"}, true
	case "NAD":
		return Currency{Code: "NAD", Exponent: 2, Name: "Namibia Dollar"}, true
	case "NGN":
		return Currency{Code: "NGN", Exponent: 2, Name: "Naira"}, true
	case "NIO":
		return Currency{Code: "NIO", Exponent: 2, Name: "Cordoba Oro"}, true
	case "NOK":
		return Currency{Code: "NOK", Exponent: 2, Name: "Norwegian Krone"}, true
	case "NPR":
		return Currency{Code: "NPR", Exponent: 2, Name: "Nepalese Rupee"}, true
	case "NZD":
		return Currency{Code: "NZD", Exponent: 2, Name: "New Zealand Dollar"}, true
	case "OMR":
		return Currency{Code: "OMR", Exponent: 3, Name: "Rial Omani"}, true
	case "PAB":
		return Currency{Code: "PAB", Exponent: 2, Name: "Balboa"}, true
	case "PEN":
		return Currency{Code: "PEN", Exponent: 2, Name: "Sol"}, true
	case "PGK":
		return Currency{Code: "PGK", Exponent: 2, Name: "Kina"}, true
	case "PHP":
		return Currency{Code: "PHP", Exponent: 2, Name: "Philippine Peso"}, true
	case "PKR":
		return Currency{Code: "PKR", Exponent: 2, Name: "Pakistan Rupee"}, true
	case "PLN":
		return Currency{Code: "PLN", Exponent: 2, Name: "Zloty"}, true
	case "PYG":
		return Currency{Code: "PYG", Exponent: 0, Name: "Guarani"}, true
	case "QAR":
		return Currency{Code: "QAR", Exponent: 2, Name: "Qatari Rial"}, true
	case "RON":
		return Currency{Code: "RON", Exponent: 2, Name: "Romanian Leu"}, true
	case "RSD":
		return Currency{Code: "RSD", Exponent: 2, Name: "Serbian Dinar"}, true
	case "RUB":
		return Currency{Code: "RUB", Exponent: 2, Name: "Russian Ruble"}, true
	case "RWF":
		return Currency{Code: "RWF", Exponent: 0, Name: "Rwanda Franc"}, true
	case "SAR":
		return Currency{Code: "SAR", Exponent: 2, Name: "Saudi Riyal"}, true
	case "SBD":
		return Currency{Code: "SBD", Exponent: 2, Name: "Solomon Islands Dollar"}, true
	case "SCR":
		return Currency{Code: "SCR", Exponent: 2, Name: "Seychelles Rupee"}, true
	case "SDG":
		return Currency{Code: "SDG", Exponent: 2, Name: "Sudanese Pound"}, true
	case "SEK":
		return Currency{Code: "SEK", Exponent: 2, Name: "Swedish Krona"}, true
	case "SGD":
		return Currency{Code: "SGD", Exponent: 2, Name: "Singapore Dollar"}, true
	case "SHP":
		return Currency{Code: "SHP", Exponent: 2, Name: "Saint Helena Pound"}, true
	case "SLE":
		return Currency{Code: "SLE", Exponent: 2, Name: "Leone"}, true
	case "SOS":
		return Currency{Code: "SOS", Exponent: 2, Name: "Somali Shilling"}, true
	case "SRD":
		return Currency{Code: "SRD", Exponent: 2, Name: "Surinam Dollar"}, true
	case "SSP":
		return Currency{Code: "SSP", Exponent: 2, Name: "South Sudanese Pound"}, true
	case "STN":
		return Currency{Code: "STN", Exponent: 2, Name: "Dobra"}, true
	case "SVC":
		return Currency{Code: "SVC", Exponent: 2, Name: "El Salvador Colon"}, true
	case "SYP":
		return Currency{Code: "SYP", Exponent: 2, Name: "Syrian Pound"}, true
	case "SZL":
		return Currency{Code: "SZL", Exponent: 2, Name: "Lilangeni"}, true
	case "THB":
		return Currency{Code: "THB", Exponent: 2, Name: "Baht"}, true
	case "TJS":
		return Currency{Code: "TJS", Exponent: 2, Name: "Somoni"}, true
	case "TMT":
		return Currency{Code: "TMT", Exponent: 2, Name: "Turkmenistan New Manat"}, true
	case "TND":
		return Currency{Code: "TND", Exponent: 3, Name: "Tunisian Dinar"}, true
	case "TOP":
		return Currency{Code: "TOP", Exponent: 2, Name: "Pa'anga"}, true
	case "TRY":
		return Currency{Code: "TRY", Exponent: 2, Name: "Turkish Lira"}, true
	case "TTD":
		return Currency{Code: "TTD", Exponent: 2, Name: "Trinidad and Tobago Dollar"}, true
	case "TWD":
		return Currency{Code: "TWD", Exponent: 2, Name: "New Taiwan Dollar"}, true
	case "TZS":
		return Currency{Code: "TZS", Exponent: 2, Name: "Tanzanian Shilling"}, true
	case "UAH":
		return Currency{Code: "UAH", Exponent: 2, Name: "Hryvnia"}, true
	case "UGX":
		return Currency{Code: "UGX", Exponent: 0, Name: "Uganda Shilling"}, true
	case "USD":
		return Currency{Code: "USD", Exponent: 2, Name: "US Dollar"}, true
	case "USN":
		return Currency{Code: "USN", Exponent: 2, Name: "US Dollar (Next day)"}, true
	case "UYI":
		return Currency{Code: "UYI", Exponent: 0, Name: "Uruguay Peso en Unidades Indexadas (UI)"}, true
	case "UYU":
		return Currency{Code: "UYU", Exponent: 2, Name: "Peso Uruguayo"}, true
	case "UYW":
		return Currency{Code: "UYW", Exponent: 4, Name: "Unidad Previsional"}, true
	case "UZS":
		return Currency{Code: "UZS", Exponent: 2, Name: "Uzbekistan Sum"}, true
	case "VED":
		return Currency{Code: "VED", Exponent: 2, Name: "Bolivar Soberano (digital)"}, true
	case "VES":
		return Currency{Code: "VES", Exponent: 2, Name: "Bolivar Soberano"}, true
	case "VND":
		return Currency{Code: "VND", Exponent: 0, Name: "Dong"}, true
	case "VUV":
		return Currency{Code: "VUV", Exponent: 0, Name: "Vatu"}, true
	case "WST":
		return Currency{Code: "WST", Exponent: 2, Name: "Tala"}, true
	case "XAF":
		return Currency{Code: "XAF", Exponent: 0, Name: "CFA Franc BEAC"}, true
	case "XCD":
		return Currency{Code: "XCD", Exponent: 2, Name: "East Caribbean Dollar"}, true
	case "XCG":
		return Currency{Code: "XCG", Exponent: 2, Name: "Caribbean Guilder"}, true
	case "XOF":
		return Currency{Code: "XOF", Exponent: 0, Name: "CFA Franc BCEAO"}, true
	case "XPF":
		return Currency{Code: "XPF", Exponent: 0, Name: "CFP Franc"}, true
	case "YER":
		return Currency{Code: "YER", Exponent: 2, Name: "Yemeni Rial"}, true
	case "ZAR":
		return Currency{Code: "ZAR", Exponent: 2, Name: "Rand"}, true
	case "ZMW":
		return Currency{Code: "ZMW", Exponent: 2, Name: "Zambian Kwacha"}, true
	case "ZWG":
		return Currency{Code: "ZWG", Exponent: 2, Name: "Zimbabwe Gold"}, true
	}
	return Currency{}, false
}
