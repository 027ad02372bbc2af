# ruff: noqa: RUF001 - the Chinese texts use full-width punctuation on purpose
"""The demo catalog: the city's departments and forty services in Korean, English and Chinese,
some with fees, some reachable through Open311. Data only; ``civic.demo`` loads it."""

from typing import Any

MB = 1024 * 1024


def t(ko: str, en: str, zh: str) -> dict[str, str]:
    return {"ko": ko, "en": en, "zh": zh}


def field(code: str, label: dict[str, str], datatype: str, required: bool = True, **extra: Any):
    return {"code": code, "label": label, "datatype": datatype, "required": required, **extra}


def options(*pairs: tuple[str, dict[str, str]]) -> list[dict[str, Any]]:
    return [{"key": key, "name": name} for key, name in pairs]


def doc(
    code: str,
    label: dict[str, str],
    types: tuple[str, ...] = ("application/pdf", "image/jpeg", "image/png"),
    max_bytes: int = 2 * MB,
    required: bool = True,
) -> dict[str, Any]:
    return {
        "code": code,
        "label": label,
        "required": required,
        "types": list(types),
        "max_bytes": max_bytes,
    }


def krw(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "KRW"}


DEPARTMENTS = (
    ("CIVIL-REG", t("민원여권과", "Civil Registration and Passports", "民事登记与护照科")),
    ("VEHICLES", t("차량등록사업소", "Vehicle Registration Office", "车辆登记所")),
    ("TAX", t("세무과", "Local Taxes", "地方税务科")),
    ("WELFARE", t("복지정책과", "Welfare", "福利政策科")),
    ("HOUSING", t("건축과", "Building and Housing", "建筑住房科")),
    ("BUSINESS", t("지역경제과", "Business Licensing", "地方经济科")),
    ("ROADS", t("도로교통과", "Roads and Traffic", "道路交通科")),
    ("ENVIRONMENT", t("청소행정과", "Sanitation", "环境卫生科")),
    ("PARKS", t("공원녹지과", "Parks and Green Spaces", "公园绿地科")),
    ("SAFETY", t("안전총괄과", "Public Safety", "公共安全科")),
)

# --- fields and documents used by several services -----------------------------------------

NAME = field("full_name", t("성명", "Full name", "姓名"), "string", max_length=50)
BIRTH = field("birth_date", t("생년월일", "Date of birth", "出生日期"), "date")
PHONE = field("phone", t("연락처", "Phone", "联系电话"), "phone")
EMAIL = field("email", t("이메일", "Email", "电子邮箱"), "email", required=False)
ADDRESS = field("address", t("주소", "Address", "地址"), "string", max_length=200)
NOTES = field("notes", t("비고", "Notes", "备注"), "text", required=False)
COPIES = field("copies", t("발급 부수", "Copies", "份数"), "number", min=1, max=10)
PURPOSE = field(
    "purpose",
    t("용도", "Purpose", "用途"),
    "singlevaluelist",
    values=options(
        ("bank", t("금융기관 제출", "For a bank", "提交银行")),
        ("court", t("법원 제출", "For a court", "提交法院")),
        ("school", t("학교 제출", "For a school", "提交学校")),
        ("other", t("기타", "Other", "其他")),
    ),
)
PLACE = field(
    "location_detail",
    t("위치 설명", "Where exactly", "具体位置"),
    "text",
    required=False,
    max_length=500,
)
SEEN_AT = field("seen_at", t("발견 일시", "Seen at", "发现时间"), "datetime", required=False)
VEHICLE_NO = field(
    "vehicle_number",
    t("차량번호", "Vehicle number", "车牌号"),
    "string",
    pattern=r"^[0-9]{2,3}[가-힣][0-9]{4}$",
)
BANK = field(
    "bank",
    t("은행", "Bank", "银行"),
    "singlevaluelist",
    values=options(
        ("kb", t("국민은행", "KB Kookmin Bank", "国民银行")),
        ("shinhan", t("신한은행", "Shinhan Bank", "新韩银行")),
        ("woori", t("우리은행", "Woori Bank", "友利银行")),
        ("hana", t("하나은행", "Hana Bank", "韩亚银行")),
    ),
)
ACCOUNT = field(
    "account_number",
    t("계좌번호", "Account number", "账号"),
    "string",
    pattern=r"^[0-9-]{8,20}$",
)
ID_CARD = doc("id_card", t("신분증 사본", "Copy of your ID card", "身份证复印件"))
PHOTO = doc(
    "photo", t("여권용 사진", "Passport photo", "护照照片"), ("image/jpeg", "image/png"), MB
)
PICTURE = doc(
    "picture",
    t("현장 사진", "Photo of the spot", "现场照片"),
    ("image/jpeg", "image/png"),
    4 * MB,
    required=False,
)
BANKBOOK = doc("bankbook", t("통장 사본", "Copy of the bankbook", "存折复印件"))
SIZE = field(
    "size",
    t("크기", "Size", "大小"),
    "singlevaluelist",
    values=options(
        ("small", t("작음 (30cm 미만)", "Small (under 30 cm)", "小（30厘米以下）")),
        ("medium", t("중간", "Medium", "中")),
        ("large", t("큼 (1m 이상)", "Large (over 1 m)", "大（1米以上）")),
    ),
)
DANGER = field(
    "dangerous",
    t("통행에 위험한가요?", "Is it a danger to traffic?", "是否危及通行？"),
    "boolean",
    required=False,
)


def service(
    code: str,
    category: str,
    department: str,
    name: dict[str, str],
    description: dict[str, str],
    keywords: list[str],
    *,
    fee: dict[str, Any] | None = None,
    days: int = 3,
    documents: list[dict[str, Any]] | None = None,
    fields: list[dict[str, Any]] | None = None,
    open311: bool = False,
) -> dict[str, Any]:
    return {
        "code": code,
        "category": category,
        "department": department,
        "name": name,
        "description": description,
        "keywords": keywords,
        "fee": fee,
        "processing_days": days,
        "documents": documents or [],
        "fields": fields or [],
        "open311": open311,
    }


def report(
    code: str,
    category: str,
    department: str,
    name: dict[str, str],
    description: dict[str, str],
    keywords: list[str],
    days: int,
    *extra_fields: dict[str, Any],
) -> dict[str, Any]:
    """A report anyone may file through Open311: no fee, an optional photo."""
    return service(
        code,
        category,
        department,
        name,
        description,
        keywords,
        days=days,
        documents=[PICTURE],
        fields=[*extra_fields, PLACE],
        open311=True,
    )


SERVICES = (
    # --- civil registration and passports --------------------------------------------------
    service(
        "FAMILY-CERT",
        "civil-registration",
        "CIVIL-REG",
        t("가족관계증명서 발급", "Family relations certificate", "家庭关系证明书签发"),
        t(
            "본인과 부모, 배우자, 자녀의 관계를 증명하는 서류를 발급합니다.",
            "A certificate of your relations to your parents, spouse and children.",
            "签发证明本人与父母、配偶及子女关系的证明书。",
        ),
        ["가족관계", "증명서", "family", "certificate", "家庭关系"],
        fee=krw(1000),
        days=1,
        fields=[NAME, BIRTH, PURPOSE, COPIES],
    ),
    service(
        "RESIDENT-COPY",
        "civil-registration",
        "CIVIL-REG",
        t("주민등록표 등본 발급", "Copy of resident registration", "居民登记誊本签发"),
        t(
            "세대원 전원의 주민등록 사항이 담긴 등본을 발급합니다.",
            "A copy of the resident registration of your whole household.",
            "签发包含全体户内成员登记事项的誊本。",
        ),
        ["등본", "주민등록", "resident", "registration", "誊本"],
        fee=krw(400),
        days=1,
        fields=[NAME, BIRTH, PURPOSE, COPIES],
    ),
    service(
        "SEAL-CERT",
        "civil-registration",
        "CIVIL-REG",
        t("인감증명서 발급", "Certificate of seal impression", "印鉴证明书签发"),
        t(
            "신고된 인감이 본인의 것임을 증명합니다. 부동산 거래 등에 필요합니다.",
            "Proves that a registered seal is yours; needed for property deals and contracts.",
            "证明登记的印鉴属于本人，用于房产交易等。",
        ),
        ["인감", "증명서", "seal", "stamp", "印鉴"],
        fee=krw(600),
        days=1,
        documents=[ID_CARD],
        fields=[NAME, BIRTH, PURPOSE],
    ),
    service(
        "MOVE-IN",
        "civil-registration",
        "CIVIL-REG",
        t("전입신고", "Moving-in report", "迁入申报"),
        t(
            "새 주소로 이사한 날부터 14일 안에 전입을 신고합니다.",
            "Report your new address within 14 days of moving in.",
            "搬入新住址后14天内申报迁入。",
        ),
        ["전입", "이사", "주소변경", "move", "address", "迁入", "搬家"],
        days=2,
        fields=[
            NAME,
            BIRTH,
            ADDRESS,
            field("moved_on", t("전입일", "Moved in on", "迁入日期"), "date"),
            field(
                "members", t("세대원 수", "Household members", "户内人数"), "number", min=1, max=20
            ),
            PHONE,
        ],
    ),
    service(
        "BIRTH-REG",
        "civil-registration",
        "CIVIL-REG",
        t("출생신고", "Birth registration", "出生申报"),
        t(
            "아이가 태어난 날부터 한 달 안에 출생을 신고합니다.",
            "Register a birth within one month.",
            "婴儿出生后一个月内申报出生。",
        ),
        ["출생", "신생아", "birth", "baby", "出生"],
        days=3,
        documents=[
            doc("birth_proof", t("출생증명서", "Hospital birth certificate", "医院出生证明"))
        ],
        fields=[
            field(
                "child_name", t("아이 이름", "Child's name", "婴儿姓名"), "string", max_length=50
            ),
            field("born_at", t("출생 일시", "Born at", "出生时间"), "datetime"),
            field("birthplace", t("출생 장소", "Place of birth", "出生地点"), "string"),
            NAME,
            PHONE,
        ],
    ),
    service(
        "MARRIAGE-REG",
        "civil-registration",
        "CIVIL-REG",
        t("혼인신고", "Marriage registration", "结婚申报"),
        t(
            "혼인을 신고합니다. 증인 두 사람의 서명이 필요합니다.",
            "Register a marriage; two witnesses must sign.",
            "申报结婚，需两名证人签名。",
        ),
        ["혼인", "결혼", "marriage", "wedding", "结婚"],
        days=3,
        documents=[doc("signed_form", t("서명한 신고서", "Signed form", "签名的申报书"))],
        fields=[
            NAME,
            field("spouse_name", t("배우자 성명", "Spouse's name", "配偶姓名"), "string"),
            field("married_on", t("혼인일", "Married on", "结婚日期"), "date"),
        ],
    ),
    service(
        "PASSPORT-NEW",
        "passports",
        "CIVIL-REG",
        t("여권신규발급", "New passport", "护照申领"),
        t(
            "전자여권을 처음 발급합니다. 사진은 6개월 이내 촬영한 것이어야 합니다.",
            "Apply for your first e-passport; the photo must be under six months old.",
            "首次申领电子护照，照片须为六个月内拍摄。",
        ),
        ["여권", "신규", "passport", "护照"],
        fee=krw(50000),
        days=7,
        documents=[PHOTO],
        fields=[
            NAME,
            BIRTH,
            field(
                "pages",
                t("면수", "Pages", "页数"),
                "singlevaluelist",
                values=options(
                    ("26", t("26면", "26 pages", "26页")), ("58", t("58면", "58 pages", "58页"))
                ),
            ),
            field(
                "delivery",
                t("수령 방법", "Delivery", "领取方式"),
                "singlevaluelist",
                values=options(
                    ("counter", t("창구 수령", "Collect at the counter", "窗口领取")),
                    ("courier", t("등기 우편", "Registered mail", "挂号邮寄")),
                ),
            ),
            EMAIL,
        ],
    ),
    service(
        "PASSPORT-REISSUE",
        "passports",
        "CIVIL-REG",
        t("여권재발급", "Passport reissue", "护照补发"),
        t(
            "분실하거나 훼손된 여권, 만료된 여권을 다시 발급합니다.",
            "Reissue a lost, damaged or expired passport.",
            "补发遗失、损坏或过期的护照。",
        ),
        ["여권", "재발급", "분실", "passport", "reissue", "护照", "补发"],
        fee=krw(53000),
        days=5,
        documents=[
            PHOTO,
            doc("police_report", t("분실 신고서", "Loss report", "遗失报告"), required=False),
        ],
        fields=[
            NAME,
            BIRTH,
            field(
                "reason",
                t("재발급 사유", "Reason", "补发原因"),
                "singlevaluelist",
                values=options(
                    ("lost", t("분실", "Lost", "遗失")),
                    ("damaged", t("훼손", "Damaged", "损坏")),
                    ("expired", t("기간 만료", "Expired", "过期")),
                ),
            ),
            field(
                "old_number",
                t("이전 여권번호", "Old passport number", "原护照号码"),
                "string",
                required=False,
                pattern=r"^[A-Z][0-9A-Z][0-9]{7}$",
            ),
            EMAIL,
        ],
    ),
    # --- vehicles --------------------------------------------------------------------------
    service(
        "VEHICLE-TRANSFER",
        "vehicles",
        "VEHICLES",
        t("자동차 이전등록", "Vehicle ownership transfer", "机动车过户登记"),
        t(
            "중고차를 사고판 뒤 15일 안에 소유권 이전을 등록합니다.",
            "Register a used car's new owner within 15 days of the sale.",
            "二手车买卖后15天内办理过户登记。",
        ),
        ["자동차", "이전", "중고차", "vehicle", "car", "transfer", "过户", "汽车"],
        fee=krw(1000),
        days=2,
        documents=[doc("sale_contract", t("매매계약서", "Sale contract", "买卖合同")), ID_CARD],
        fields=[VEHICLE_NO, NAME, field("sold_on", t("매매일", "Sold on", "交易日期"), "date")],
    ),
    service(
        "VEHICLE-DEREG",
        "vehicles",
        "VEHICLES",
        t("자동차 말소등록", "Vehicle deregistration", "机动车注销登记"),
        t(
            "폐차하거나 수출한 자동차의 등록을 말소합니다.",
            "Deregister a car that was scrapped or exported.",
            "注销已报废或出口车辆的登记。",
        ),
        ["말소", "폐차", "deregister", "scrap", "注销", "报废"],
        days=3,
        documents=[doc("scrap_proof", t("폐차 인수증명서", "Scrapping certificate", "报废证明"))],
        fields=[VEHICLE_NO, NAME],
    ),
    service(
        "PLATE-REISSUE",
        "vehicles",
        "VEHICLES",
        t("번호판 재발급", "Number plate replacement", "号牌补发"),
        t(
            "잃어버리거나 훼손된 자동차 번호판을 다시 발급합니다.",
            "Replace a lost or damaged number plate.",
            "补发遗失或损坏的车辆号牌。",
        ),
        ["번호판", "재발급", "plate", "号牌", "补发"],
        fee=krw(12000),
        days=2,
        fields=[VEHICLE_NO, NAME, NOTES],
    ),
    # --- local taxes -----------------------------------------------------------------------
    service(
        "TAX-CERT",
        "tax",
        "TAX",
        t("지방세 납세증명서 발급", "Local tax payment certificate", "地方税纳税证明"),
        t(
            "체납한 지방세가 없음을 증명합니다.",
            "Proves you owe no local taxes.",
            "证明本人无拖欠地方税。",
        ),
        ["납세", "증명서", "지방세", "tax", "certificate", "纳税"],
        days=1,
        fields=[NAME, BIRTH, PURPOSE],
    ),
    service(
        "TAX-INSTALMENT",
        "tax",
        "TAX",
        t("지방세 분할납부 신청", "Local tax in instalments", "地方税分期缴纳申请"),
        t(
            "재산세 등 지방세를 여러 달에 나누어 냅니다.",
            "Pay property and other local taxes over several months.",
            "将财产税等地方税分几个月缴纳。",
        ),
        ["분할납부", "재산세", "instalment", "property tax", "分期"],
        days=7,
        fields=[
            field(
                "notice_number",
                t("고지서 번호", "Tax notice number", "缴税通知书编号"),
                "string",
                pattern=r"^[0-9]{10,20}$",
            ),
            field("months", t("분할 개월 수", "Months", "分期月数"), "number", min=2, max=12),
            field("reason", t("사유", "Reason", "原因"), "text"),
        ],
    ),
    service(
        "TAX-REFUND",
        "tax",
        "TAX",
        t("지방세 환급 신청", "Local tax refund", "地方税退税申请"),
        t(
            "잘못 내거나 더 낸 지방세를 돌려받습니다.",
            "Get back local tax paid twice or in excess.",
            "退还多缴或误缴的地方税。",
        ),
        ["환급", "refund", "退税"],
        days=14,
        documents=[BANKBOOK],
        fields=[NAME, BANK, ACCOUNT, NOTES],
    ),
    # --- welfare ---------------------------------------------------------------------------
    service(
        "CHILD-ALLOWANCE",
        "welfare",
        "WELFARE",
        t("아동수당 신청", "Child allowance", "儿童津贴申请"),
        t(
            "만 8세 미만 아동에게 매달 10만 원을 지급합니다.",
            "₩100,000 a month for each child under eight.",
            "向未满8周岁儿童每月发放10万韩元。",
        ),
        ["아동수당", "육아", "child", "allowance", "儿童", "津贴"],
        days=14,
        documents=[BANKBOOK],
        fields=[
            NAME,
            field("child_name", t("아동 이름", "Child's name", "儿童姓名"), "string"),
            field(
                "child_birth_date",
                t("아동 생년월일", "Child's date of birth", "儿童出生日期"),
                "date",
            ),
            BANK,
            ACCOUNT,
        ],
    ),
    service(
        "BASIC-PENSION",
        "welfare",
        "WELFARE",
        t("기초연금 신청", "Basic old-age pension", "基础养老金申请"),
        t(
            "만 65세 이상 어르신의 소득에 따라 기초연금을 지급합니다.",
            "A monthly pension for residents aged 65 or over, by income.",
            "根据收入向65岁以上老人发放基础养老金。",
        ),
        ["기초연금", "노인", "pension", "elderly", "养老金"],
        days=30,
        documents=[BANKBOOK],
        fields=[NAME, BIRTH, BANK, ACCOUNT, PHONE],
    ),
    service(
        "DISABILITY-REG",
        "welfare",
        "WELFARE",
        t("장애인 등록", "Disability registration", "残疾人登记"),
        t(
            "장애 정도를 심사받고 장애인으로 등록합니다.",
            "Have a disability assessed and registered.",
            "接受残疾程度审查并进行残疾人登记。",
        ),
        ["장애인", "등록", "disability", "残疾"],
        days=30,
        documents=[doc("diagnosis", t("진단서", "Medical diagnosis", "诊断书"), max_bytes=5 * MB)],
        fields=[NAME, BIRTH, PHONE, NOTES],
    ),
    service(
        "EMERGENCY-AID",
        "welfare",
        "WELFARE",
        t("긴급복지지원 신청", "Emergency welfare support", "紧急福利援助申请"),
        t(
            "갑작스러운 위기로 생계가 어려울 때 생계비와 의료비를 지원합니다.",
            "Living and medical costs when a sudden crisis leaves you without means.",
            "因突发危机生活困难时，提供生活费和医疗费援助。",
        ),
        ["긴급", "생계", "emergency", "aid", "紧急", "援助"],
        days=3,
        fields=[
            NAME,
            PHONE,
            field(
                "crisis",
                t("위기 사유", "What happened", "危机原因"),
                "multivaluelist",
                values=options(
                    ("job_loss", t("실직", "Lost my job", "失业")),
                    ("illness", t("질병", "Illness", "疾病")),
                    ("fire", t("화재", "Fire", "火灾")),
                    ("eviction", t("주거 상실", "Lost my home", "失去住所")),
                ),
            ),
            field("story", t("상황 설명", "Tell us more", "情况说明"), "text"),
        ],
    ),
    # --- building and housing --------------------------------------------------------------
    service(
        "BUILDING-PERMIT",
        "housing",
        "HOUSING",
        t("건축허가 신청", "Building permit", "建筑许可申请"),
        t(
            "건물을 새로 짓거나 증축할 때 허가를 받습니다.",
            "A permit to build or extend a building.",
            "新建或扩建建筑物需申请许可。",
        ),
        ["건축", "허가", "building", "permit", "建筑", "许可"],
        fee=krw(30000),
        days=20,
        documents=[
            doc("site_plan", t("배치도", "Site plan", "总平面图"), ("application/pdf",), 8 * MB)
        ],
        fields=[
            ADDRESS,
            field(
                "floor_area",
                t("연면적 (㎡)", "Floor area (m²)", "建筑面积（㎡）"),
                "number",
                min=1,
                max=100000,
            ),
            field("floors", t("층수", "Floors", "层数"), "number", min=1, max=100),
            NAME,
            PHONE,
        ],
    ),
    service(
        "REMODEL-REPORT",
        "housing",
        "HOUSING",
        t("대수선 신고", "Major renovation notice", "大修申报"),
        t(
            "내력벽이나 기둥을 고치는 공사 전에 신고합니다.",
            "Give notice before work on load-bearing walls or columns.",
            "对承重墙、柱子进行施工前需申报。",
        ),
        ["대수선", "리모델링", "renovation", "remodel", "装修", "大修"],
        fee=krw(10000),
        days=10,
        documents=[
            doc("drawings", t("설계도서", "Drawings", "设计图纸"), ("application/pdf",), 8 * MB)
        ],
        fields=[ADDRESS, field("work", t("공사 내용", "The work", "施工内容"), "text"), PHONE],
    ),
    service(
        "BUILDING-REGISTER",
        "housing",
        "HOUSING",
        t("건축물대장 발급", "Building register copy", "建筑物台账誊本"),
        t(
            "건물의 용도, 면적, 구조가 적힌 건축물대장을 발급합니다.",
            "A copy of a building's register: use, area and structure.",
            "签发记载建筑物用途、面积、结构的台账。",
        ),
        ["건축물대장", "building register", "台账"],
        fee=krw(500),
        days=1,
        fields=[ADDRESS, COPIES],
    ),
    # --- business --------------------------------------------------------------------------
    service(
        "RESTAURANT-LICENSE",
        "business",
        "BUSINESS",
        t("일반음식점 영업신고", "Restaurant business notice", "一般餐饮店营业申报"),
        t(
            "식당 영업을 시작하기 전에 신고합니다. 위생교육 수료증이 필요합니다.",
            "Give notice before opening a restaurant; a hygiene training certificate is needed.",
            "开设餐馆前需申报，须提供卫生培训结业证。",
        ),
        ["음식점", "식당", "영업신고", "restaurant", "food", "餐饮", "饭店"],
        fee=krw(28000),
        days=3,
        documents=[
            doc(
                "hygiene_training",
                t("위생교육 수료증", "Hygiene training certificate", "卫生培训结业证"),
            ),
            doc("lease", t("임대차계약서", "Lease", "租赁合同"), ("application/pdf",), 5 * MB),
        ],
        fields=[
            field("business_name", t("상호", "Business name", "商号"), "string"),
            ADDRESS,
            field("seats", t("좌석 수", "Seats", "座位数"), "number", min=1, max=2000),
            NAME,
            PHONE,
        ],
    ),
    service(
        "OUTDOOR-AD",
        "business",
        "BUSINESS",
        t("옥외광고물 허가", "Outdoor advertising permit", "户外广告许可"),
        t(
            "간판이나 현수막을 설치하기 전에 허가를 받습니다.",
            "A permit for a sign or banner before it goes up.",
            "设置招牌或横幅前需获得许可。",
        ),
        ["간판", "광고", "현수막", "sign", "advert", "banner", "广告", "招牌"],
        fee=krw(20000),
        days=10,
        documents=[doc("design", t("광고물 도안", "Design of the sign", "广告设计图"))],
        fields=[
            ADDRESS,
            field("width_m", t("가로 (m)", "Width (m)", "宽（米）"), "number", min=0.1, max=50),
            field("height_m", t("세로 (m)", "Height (m)", "高（米）"), "number", min=0.1, max=50),
            field("lit", t("조명 여부", "Lit at night", "是否照明"), "boolean", required=False),
        ],
    ),
    service(
        "STREET-STALL",
        "business",
        "BUSINESS",
        t("노점 도로점용 허가", "Street stall permit", "摊位道路占用许可"),
        t(
            "보도에 노점을 두기 위해 도로 점용 허가를 받습니다.",
            "A permit to keep a stall on the pavement.",
            "在人行道设置摊位需获得道路占用许可。",
        ),
        ["노점", "도로점용", "stall", "vendor", "摊位"],
        fee=krw(35000),
        days=10,
        fields=[
            ADDRESS,
            field(
                "area_m2",
                t("점용 면적 (㎡)", "Area (m²)", "占用面积（㎡）"),
                "number",
                min=1,
                max=20,
            ),
            NAME,
            PHONE,
        ],
    ),
    # --- roads and traffic -----------------------------------------------------------------
    service(
        "RESIDENT-PARKING",
        "parking",
        "ROADS",
        t("거주자 우선주차 신청", "Resident priority parking", "居民优先停车申请"),
        t(
            "집 앞 골목의 거주자 우선주차 구획을 배정받습니다 (월 3만 원).",
            "A resident parking bay near your home (₩30,000 a month).",
            "分配住所附近的居民优先停车位（每月3万韩元）。",
        ),
        ["주차", "거주자", "parking", "resident", "停车"],
        fee=krw(30000),
        days=7,
        documents=[
            doc("vehicle_register", t("자동차등록증", "Vehicle registration", "机动车登记证"))
        ],
        fields=[
            VEHICLE_NO,
            ADDRESS,
            field(
                "zone",
                t("희망 구역", "Zone", "希望区域"),
                "singlevaluelist",
                values=options(
                    ("A", t("A구역", "Zone A", "A区")),
                    ("B", t("B구역", "Zone B", "B区")),
                    ("C", t("C구역", "Zone C", "C区")),
                ),
            ),
        ],
    ),
    report(
        "POTHOLE",
        "roads",
        "ROADS",
        t("도로 파손 신고", "Pothole", "道路坑洞报告"),
        t(
            "차도에 생긴 구멍이나 파손을 신고합니다.",
            "Report a pothole or broken road surface.",
            "报告车道上的坑洞或破损。",
        ),
        ["포트홀", "도로", "pothole", "road", "坑洞", "道路"],
        3,
        SIZE,
        DANGER,
    ),
    report(
        "STREETLIGHT",
        "roads",
        "ROADS",
        t("가로등 고장 신고", "Streetlight out", "路灯故障报告"),
        t(
            "꺼지거나 깜빡이는 가로등을 신고합니다.",
            "Report a streetlight that is out or flickering.",
            "报告不亮或闪烁的路灯。",
        ),
        ["가로등", "조명", "streetlight", "lamp", "路灯"],
        5,
        field("pole_number", t("전주 번호", "Pole number", "灯杆编号"), "string", required=False),
        field(
            "problem",
            t("증상", "Problem", "故障情况"),
            "singlevaluelist",
            values=options(
                ("out", t("꺼짐", "Out", "不亮")),
                ("flicker", t("깜빡임", "Flickering", "闪烁")),
                ("day", t("낮에도 켜짐", "On during the day", "白天亮着")),
            ),
        ),
    ),
    report(
        "SIDEWALK",
        "roads",
        "ROADS",
        t("보도블록 파손 신고", "Broken pavement", "人行道破损报告"),
        t(
            "깨지거나 들뜬 보도블록을 신고합니다.",
            "Report broken or loose paving stones.",
            "报告破裂或松动的人行道砖。",
        ),
        ["보도", "보도블록", "pavement", "sidewalk", "人行道"],
        7,
        SIZE,
    ),
    report(
        "TRAFFIC-SIGNAL",
        "roads",
        "ROADS",
        t("신호등 고장 신고", "Traffic signal fault", "信号灯故障报告"),
        t(
            "작동하지 않거나 잘못 작동하는 신호등을 신고합니다.",
            "Report a traffic light that is dark or wrong.",
            "报告不工作或工作异常的交通信号灯。",
        ),
        ["신호등", "교통", "traffic light", "signal", "信号灯"],
        1,
        field(
            "intersection", t("교차로 이름", "Intersection", "路口名称"), "string", required=False
        ),
    ),
    report(
        "ILLEGAL-PARKING",
        "parking",
        "ROADS",
        t("불법주정차 신고", "Illegal parking", "违章停车举报"),
        t(
            "소화전, 횡단보도, 어린이보호구역의 불법주정차를 신고합니다.",
            "Report a car parked at a hydrant, a crossing or a school zone.",
            "举报消防栓、人行横道、儿童保护区的违章停车。",
        ),
        ["불법주차", "주정차", "illegal parking", "违章停车"],
        1,
        field(
            "vehicle_number",
            t("차량번호", "Vehicle number", "车牌号"),
            "string",
            required=False,
            pattern=r"^[0-9]{2,3}[가-힣][0-9]{4}$",
        ),
        SEEN_AT,
    ),
    # --- sanitation ------------------------------------------------------------------------
    report(
        "ILLEGAL-DUMPING",
        "sanitation",
        "ENVIRONMENT",
        t("쓰레기 무단투기 신고", "Illegal dumping", "非法倾倒垃圾举报"),
        t(
            "길이나 공터에 버려진 쓰레기를 신고합니다.",
            "Report rubbish dumped in the street or on waste ground.",
            "举报倒在街道或空地上的垃圾。",
        ),
        ["무단투기", "쓰레기", "dumping", "rubbish", "trash", "垃圾"],
        3,
        SIZE,
        SEEN_AT,
    ),
    service(
        "BULKY-WASTE",
        "sanitation",
        "ENVIRONMENT",
        t("대형폐기물 배출 신고", "Bulky waste collection", "大件垃圾清运申报"),
        t(
            "가구, 가전 등 대형폐기물 수거를 신청합니다 (품목당 5천 원).",
            "Book a collection of furniture or appliances (₩5,000 an item).",
            "申请清运家具、家电等大件垃圾（每件5千韩元）。",
        ),
        ["대형폐기물", "가구", "bulky", "furniture", "大件垃圾"],
        fee=krw(5000),
        days=3,
        fields=[
            ADDRESS,
            field(
                "item",
                t("품목", "Item", "物品"),
                "singlevaluelist",
                values=options(
                    ("sofa", t("소파", "Sofa", "沙发")),
                    ("wardrobe", t("장롱", "Wardrobe", "衣柜")),
                    ("mattress", t("매트리스", "Mattress", "床垫")),
                    ("fridge", t("냉장고", "Fridge", "冰箱")),
                ),
            ),
            field("pickup_on", t("배출일", "Put out on", "放置日期"), "date"),
        ],
    ),
    report(
        "OVERFLOWING-BIN",
        "sanitation",
        "ENVIRONMENT",
        t("쓰레기통 넘침 신고", "Overflowing litter bin", "垃圾桶溢出报告"),
        t(
            "가득 차 넘치는 공공 쓰레기통을 신고합니다.",
            "Report a public litter bin that is full.",
            "报告装满溢出的公共垃圾桶。",
        ),
        ["쓰레기통", "bin", "litter", "垃圾桶"],
        2,
    ),
    report(
        "GRAFFITI",
        "sanitation",
        "ENVIRONMENT",
        t("낙서 신고", "Graffiti", "涂鸦举报"),
        t(
            "공공시설물의 낙서를 신고합니다.",
            "Report graffiti on public property.",
            "举报公共设施上的涂鸦。",
        ),
        ["낙서", "graffiti", "涂鸦"],
        7,
        field(
            "offensive",
            t("불쾌한 내용인가요?", "Is it offensive?", "内容是否冒犯？"),
            "boolean",
            required=False,
        ),
    ),
    # --- parks -----------------------------------------------------------------------------
    report(
        "FALLEN-TREE",
        "parks",
        "PARKS",
        t("쓰러진 나무 신고", "Fallen tree", "倒树报告"),
        t(
            "쓰러지거나 부러진 가로수와 공원 나무를 신고합니다.",
            "Report a fallen or broken tree in a street or park.",
            "报告倒伏或折断的行道树、公园树木。",
        ),
        ["나무", "가로수", "tree", "树"],
        2,
        DANGER,
    ),
    report(
        "PARK-FACILITY",
        "parks",
        "PARKS",
        t("공원시설 파손 신고", "Damaged park facility", "公园设施损坏报告"),
        t(
            "놀이기구, 벤치, 운동기구의 파손을 신고합니다.",
            "Report a broken playground, bench or exercise machine.",
            "报告游乐设施、长椅、健身器材的损坏。",
        ),
        ["공원", "놀이터", "벤치", "park", "playground", "公园"],
        7,
        field(
            "facility",
            t("시설", "Facility", "设施"),
            "singlevaluelist",
            values=options(
                ("playground", t("놀이기구", "Playground", "游乐设施")),
                ("bench", t("벤치", "Bench", "长椅")),
                ("fitness", t("운동기구", "Exercise machine", "健身器材")),
                ("toilet", t("화장실", "Toilet", "厕所")),
            ),
        ),
    ),
    service(
        "PARK-EVENT",
        "parks",
        "PARKS",
        t("공원 사용 허가", "Park event permit", "公园使用许可"),
        t(
            "공원에서 행사나 촬영을 하려면 사용 허가를 받습니다.",
            "A permit to hold an event or a film shoot in a park.",
            "在公园举办活动或拍摄需获得使用许可。",
        ),
        ["공원", "행사", "촬영", "park", "event", "公园", "活动"],
        fee=krw(50000),
        days=10,
        fields=[
            field("park", t("공원 이름", "Park", "公园名称"), "string"),
            field("starts_at", t("시작 일시", "Starts at", "开始时间"), "datetime"),
            field(
                "people", t("예상 인원", "Expected people", "预计人数"), "number", min=1, max=100000
            ),
            NAME,
            PHONE,
        ],
    ),
    # --- public safety ---------------------------------------------------------------------
    report(
        "NOISE",
        "safety",
        "SAFETY",
        t("소음 신고", "Noise complaint", "噪音投诉"),
        t(
            "공사장이나 업소의 지나친 소음을 신고합니다.",
            "Report excessive noise from a building site or a business.",
            "投诉施工现场或商铺的过度噪音。",
        ),
        ["소음", "공사", "noise", "噪音"],
        2,
        field(
            "source",
            t("소음원", "Source", "噪音来源"),
            "singlevaluelist",
            values=options(
                ("construction", t("공사장", "Building site", "施工现场")),
                ("business", t("업소", "Business", "商铺")),
                ("vehicle", t("차량", "Vehicle", "车辆")),
            ),
        ),
        SEEN_AT,
    ),
    report(
        "ABANDONED-BIKE",
        "safety",
        "SAFETY",
        t("방치 자전거 신고", "Abandoned bicycle", "废弃自行车报告"),
        t(
            "오랫동안 방치된 자전거를 신고합니다.",
            "Report a bicycle left chained for a long time.",
            "报告长期弃置的自行车。",
        ),
        ["자전거", "방치", "bicycle", "bike", "自行车"],
        14,
    ),
    service(
        "CCTV-FOOTAGE",
        "safety",
        "SAFETY",
        t("CCTV 영상정보 열람 청구", "CCTV footage request", "监控录像查阅申请"),
        t(
            "본인이 찍힌 공공 CCTV 영상을 열람하거나 사본을 청구합니다.",
            "See, or ask for a copy of, public CCTV footage of yourself.",
            "申请查阅或复制拍到本人的公共监控录像。",
        ),
        ["CCTV", "영상", "footage", "监控"],
        days=10,
        documents=[ID_CARD],
        fields=[
            NAME,
            field("recorded_at", t("촬영 일시", "When", "拍摄时间"), "datetime"),
            field("place", t("장소", "Where", "地点"), "string"),
            field("reason", t("청구 사유", "Why", "申请原因"), "text"),
        ],
    ),
)
