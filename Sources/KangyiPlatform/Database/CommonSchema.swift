/// Schema `common`: reference data every service reads — the city's districts and counties, the departments
/// cases are assigned to, and the help categories citizens choose from. These migrations create it with
/// Zhengzhou's; `kangyi reference load` replaces it with a deployment's own city (``ReferenceDataFile``).
public enum CommonSchema {
    public static let migrations: [Migration] = [
        Migration(
            schema: "common", version: 1, name: "reference data",
            statements: [
                "CREATE SCHEMA IF NOT EXISTS common",
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                """
                CREATE TABLE common.districts (
                    code text PRIMARY KEY CHECK (code ~ '^[0-9]{6}$'),
                    name text NOT NULL UNIQUE,
                    name_en text NOT NULL UNIQUE,
                    kind text NOT NULL CHECK (kind IN ('urban', 'outlying')))
                """,
                """
                INSERT INTO common.districts (code, name, name_en, kind) VALUES
                    ('420102', '江岸区', 'Jiang''an', 'urban'),
                    ('420103', '江汉区', 'Jianghan', 'urban'),
                    ('420104', '硚口区', 'Qiaokou', 'urban'),
                    ('420105', '汉阳区', 'Hanyang', 'urban'),
                    ('410102', '武昌区', 'Wuchang', 'urban'),
                    ('420107', '青山区', 'Qingshan', 'urban'),
                    ('420111', '洪山区', 'Hongshan', 'urban'),
                    ('420112', '东西湖区', 'Dongxihu', 'outlying'),
                    ('420113', '汉南区', 'Hannan', 'outlying'),
                    ('420114', '蔡甸区', 'Caidian', 'outlying'),
                    ('420115', '江夏区', 'Jiangxia', 'outlying'),
                    ('420116', '黄陂区', 'Huangpi', 'outlying'),
                    ('420117', '新洲区', 'Xinzhou', 'outlying')
                """,
                """
                CREATE TABLE common.departments (
                    code text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]*$'),
                    name text NOT NULL UNIQUE,
                    name_en text NOT NULL UNIQUE)
                """,
                """
                INSERT INTO common.departments (code, name, name_en) VALUES
                    ('health_commission', '市卫生健康委员会', 'Municipal Health Commission'),
                    ('public_security', '市公安局', 'Public Security Bureau'),
                    ('commerce', '市商务局', 'Commerce Bureau'),
                    ('market_supervision', '市市场监督管理局', 'Market Supervision Administration'),
                    ('transport', '市交通运输局', 'Transport Bureau'),
                    ('education', '市教育局', 'Education Bureau'),
                    ('civil_affairs', '市民政局', 'Civil Affairs Bureau'),
                    ('district_office', '区疫情防控指挥部', 'District Epidemic Command Office')
                """,
                """
                CREATE TABLE common.help_categories (
                    code text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]*$'),
                    name text NOT NULL UNIQUE,
                    name_en text NOT NULL UNIQUE,
                    -- the department that usually takes such a case
                    default_department text NOT NULL REFERENCES common.departments (code),
                    sort_order integer NOT NULL UNIQUE)
                """,
                """
                INSERT INTO common.help_categories (code, name, name_en, default_department, sort_order) VALUES
                    ('epidemic_policy', '防疫政策', 'Epidemic policy', 'health_commission', 1),
                    ('transport', '交通出行', 'Transport', 'transport', 2),
                    ('medical', '就医购药', 'Medical advice and medicine', 'health_commission', 3),
                    ('education', '学生教育', 'Student education', 'education', 4),
                    ('food_supply', '生活物资', 'Food supply', 'commerce', 5),
                    ('health_code', '健康码', 'Health code', 'public_security', 6),
                    ('other', '其他', 'Other', 'district_office', 7)
                """,
            ]),
        Migration(
            schema: "common", version: 2, name: "Zhengzhou, the city this system was built for",
            statements: [
                // Functional zones (郑东新区 ...) are where citizens say they live; they have no administrative
                // code of their own, so they get an identifier instead.
                "ALTER TABLE common.districts DROP CONSTRAINT districts_code_check",
                "ALTER TABLE common.districts ADD CONSTRAINT districts_code_check CHECK (code ~ '^([0-9]{6}|[a-z][a-z0-9_]{1,31})$')",
                "ALTER TABLE common.districts DROP CONSTRAINT districts_kind_check",
                "ALTER TABLE common.districts ADD CONSTRAINT districts_kind_check CHECK (kind IN ('urban', 'outlying', 'zone'))",
                // The seed's Wuhan rows go, except any a stored row still names (never dropped silently).
                """
                DO $$
                DECLARE wuhan text;
                BEGIN
                    FOREACH wuhan IN ARRAY ARRAY['420102', '420103', '420104', '420105', '410102', '420107', '420111',
                                                 '420112', '420113', '420114', '420115', '420116', '420117'] LOOP
                        BEGIN
                            DELETE FROM common.districts WHERE code = wuhan;
                        EXCEPTION WHEN foreign_key_violation THEN
                            RAISE NOTICE 'district % is still referenced; kept', wuhan;
                        END;
                    END LOOP;
                END $$
                """,
                """
                INSERT INTO common.districts (code, name, name_en, kind) VALUES
                    ('410102', '中原区', 'Zhongyuan', 'urban'),
                    ('410103', '二七区', 'Erqi', 'urban'),
                    ('410104', '管城回族区', 'Guancheng Hui', 'urban'),
                    ('410105', '金水区', 'Jinshui', 'urban'),
                    ('410106', '上街区', 'Shangjie', 'urban'),
                    ('410108', '惠济区', 'Huiji', 'urban'),
                    ('410122', '中牟县', 'Zhongmu County', 'outlying'),
                    ('410181', '巩义市', 'Gongyi', 'outlying'),
                    ('410182', '荥阳市', 'Xingyang', 'outlying'),
                    ('410183', '新密市', 'Xinmi', 'outlying'),
                    ('410184', '新郑市', 'Xinzheng', 'outlying'),
                    ('410185', '登封市', 'Dengfeng', 'outlying'),
                    ('zhengdong', '郑东新区', 'Zhengdong New Area', 'zone'),
                    ('jingkai', '经济技术开发区', 'Economic and Technological Development Zone', 'zone'),
                    ('gaoxin', '高新技术产业开发区', 'High-tech Industrial Development Zone', 'zone'),
                    ('hangkonggang', '航空港经济综合实验区', 'Airport Economy Zone', 'zone')
                ON CONFLICT (code) DO NOTHING
                """,
                """
                INSERT INTO common.departments (code, name, name_en) VALUES
                    ('development_reform', '市发展和改革委员会', 'Development and Reform Commission'),
                    ('industry_it', '市工业和信息化局', 'Industry and Information Technology Bureau'),
                    ('publicity', '市委宣传部（城市官方发布渠道）', 'Publicity Department (the city''s official channel)')
                ON CONFLICT (code) DO NOTHING
                """,
                "UPDATE common.departments SET name = '区疫情防控指挥部', name_en = 'District Command Posts' WHERE code = 'district_office'",
                // The city itself: its codes and its licence plates' prefix (the checkpoint service's "local").
                """
                CREATE TABLE common.city (
                    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                    name text NOT NULL,
                    name_en text NOT NULL,
                    code text NOT NULL CHECK (code ~ '^[0-9]{6}$'),
                    province text NOT NULL CHECK (province ~ '^[0-9]{2}0000$'),
                    plate_prefix text NOT NULL CHECK (length(plate_prefix) = 2))
                """,
                "INSERT INTO common.city (name, name_en, code, province, plate_prefix) VALUES ('郑州市', 'Zhengzhou', '410100', '410000', '豫A')",
            ]),
    ]
}
